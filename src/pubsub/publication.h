// One published Message: the frame every subscriber receives, built once,
// plus its compressed variants, built at most once each on first need and
// then shared by every subscriber (on every thread) with the same
// permessage-deflate window. Reference counted across threads.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "pubsub/frame.h"
#include "util/buffer.h"
#include "util/trace_context.h"
#include "ws/deflate.h"

namespace wstrace::pubsub {

// Per-thread compressors, one per window size, created on first use.
class DeflaterSet {
 public:
  ws::Deflater& get(uint8_t window_bits);
  Buffer& scratch() { return scratch_; }

 private:
  std::array<std::unique_ptr<ws::Deflater>, 16> by_bits_;
  Buffer scratch_;
};

class Publication {
 public:
  // Messages shorter than this are sent uncompressed even to clients that
  // negotiated permessage-deflate (RFC 7692 allows it per message): deflate
  // cannot shrink them and would only cost CPU.
  static constexpr size_t kCompressMin = 64;

  // Builds the frame {"type":"Message","channel":C,"content":S}; refs = 1.
  static Publication* make(std::string_view channel, std::string_view content,
                           uint64_t published_unix_ns, const TraceContext& trace,
                           uint64_t origin_node, Buffer& scratch);

  void ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      if (completion_hook_ != nullptr) completion_hook_(*this, completion_context_);
      delete this;
    }
  }

  std::string_view channel() const { return channel_; }
  Frame* plain() const { return plain_; }
  // The frame for a subscriber that negotiated permessage-deflate with
  // server_max_window_bits = `window_bits` (9..15). May be plain() when
  // compression would not help.
  Frame* deflated(uint8_t window_bits, DeflaterSet& deflaters);

  // Delivery accounting, summed over the threads that deliver it; read by
  // the completion hook when the last reference goes.
  void add_delivered(uint32_t recipients, uint32_t dropped) {
    recipients_.fetch_add(recipients, std::memory_order_relaxed);
    dropped_.fetch_add(dropped, std::memory_order_relaxed);
  }
  uint32_t recipients() const { return recipients_.load(std::memory_order_relaxed); }
  uint32_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

  // When this node started delivering it (the first thread to get to it).
  void mark_delivery_start(uint64_t unix_ns) {
    uint64_t zero = 0;
    delivery_start_.compare_exchange_strong(zero, unix_ns, std::memory_order_relaxed);
  }
  uint64_t delivery_start_unix_ns() const { return delivery_start_.load(std::memory_order_relaxed); }

  // Called once per publication, on the thread that releases it last (after
  // every thread of this node delivered it). Set once at start-up.
  using CompletionHook = void (*)(const Publication&, void* context);
  static void set_completion_hook(CompletionHook hook, void* context) {
    completion_hook_ = hook;
    completion_context_ = context;
  }

  uint64_t published_unix_ns() const { return published_unix_ns_; }
  const TraceContext& trace() const { return trace_; }
  uint64_t origin_node() const { return origin_node_; }
  size_t content_size() const { return content_size_; }
  std::string_view content() const { return content_; }

  Publication(const Publication&) = delete;
  Publication& operator=(const Publication&) = delete;

 private:
  Publication() = default;
  ~Publication();

  std::atomic<uint32_t> refs_{1};
  std::string channel_;
  std::string content_;  // kept for the cluster bridge and the echo of traces
  Frame* plain_ = nullptr;
  std::array<std::atomic<Frame*>, 8> deflated_{};  // window bits 8..15
  uint64_t published_unix_ns_ = 0;
  uint64_t origin_node_ = 0;
  size_t content_size_ = 0;
  TraceContext trace_;
  std::atomic<uint32_t> recipients_{0};
  std::atomic<uint32_t> dropped_{0};
  std::atomic<uint64_t> delivery_start_{0};
  static inline CompletionHook completion_hook_ = nullptr;
  static inline void* completion_context_ = nullptr;
};

}  // namespace wstrace::pubsub
