// A complete WebSocket frame (header + payload) that is built once and then
// shared, read-only, by every connection that sends it. Reference counted
// across threads; the bytes never change after make().
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "ws/frame.h"

namespace wstrace::pubsub {

class Frame {
 public:
  // A server frame (unmasked) around `payload`; refs = 1. A nonzero
  // `published_unix_ns` is kept with the frame (a publication's frame: when
  // it is fully written to a subscriber, websocket.delivery.latency is
  // observed from that time).
  static Frame* make(ws::Opcode op, const uint8_t* payload, size_t n, bool rsv1 = false,
                     uint64_t published_unix_ns = 0);
  static Frame* make(ws::Opcode op, std::string_view payload, bool rsv1 = false) {
    return make(op, reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), rsv1);
  }

  // Raw bytes sent as they are (an HTTP response before the upgrade).
  static Frame* make_raw(std::string_view bytes);
  // Several frames back to back in one buffer (a fan-out run: one copy per
  // run, then every subscriber's write is a single contiguous segment). Keeps
  // the publication times of all of them, in order.
  static Frame* concat(Frame* const* frames, size_t n);

  void ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }

  const uint8_t* data() const { return bytes_; }
  uint32_t size() const { return size_; }
  uint32_t payload_size() const { return payload_size_; }

  // Publication times carried (one per publication in the frame; 0 for
  // frames that are not publications). Stored after the bytes, in the same
  // allocation: 8 bytes per publication per shared frame, nothing per
  // subscriber.
  uint32_t stamp_count() const { return stamps_; }
  uint64_t stamp(uint32_t i) const {
    uint64_t t;
    std::memcpy(&t, bytes_ + size_ + sizeof(uint64_t) * i, sizeof t);
    return t;
  }

  Frame(const Frame&) = delete;
  Frame& operator=(const Frame&) = delete;

 private:
  Frame() = default;
  void destroy();

  std::atomic<uint32_t> refs_{1};
  uint32_t size_ = 0;
  uint32_t payload_size_ = 0;
  uint32_t stamps_ = 0;  // publication times stored after bytes_[size_]
  uint8_t bytes_[];  // NOLINT: flexible array member, allocated with the object
};

// Owning pointer for code that holds one reference.
class FrameRef {
 public:
  FrameRef() = default;
  explicit FrameRef(Frame* f) : f_(f) {}  // adopts a reference
  ~FrameRef() {
    if (f_) f_->unref();
  }
  FrameRef(FrameRef&& o) noexcept : f_(o.f_) { o.f_ = nullptr; }
  FrameRef& operator=(FrameRef&& o) noexcept {
    if (this != &o) {
      if (f_) f_->unref();
      f_ = o.f_;
      o.f_ = nullptr;
    }
    return *this;
  }
  FrameRef(const FrameRef&) = delete;
  FrameRef& operator=(const FrameRef&) = delete;
  Frame* get() const { return f_; }
  Frame* operator->() const { return f_; }
  explicit operator bool() const { return f_ != nullptr; }

 private:
  Frame* f_ = nullptr;
};

}  // namespace wstrace::pubsub
