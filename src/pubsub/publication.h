// One published Message: the frame every subscriber receives, built once,
// plus its compressed variants, built at most once each on first need and
// then shared by every subscriber (on every thread) with the same
// permessage-deflate window. Reference counted across threads.
//
// Life: made by the publishing thread (unsealed: no position yet), then
// sealed by the channel's sequencer (its owner thread, or the cluster bridge
// for a publication that came back from Redis) with its epoch and offset,
// which builds the frame. Only sealed publications are delivered, and after
// seal() nothing in it changes but the delivery counters.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "protocol/protocol.h"
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

  // An unsealed publication; refs = 1.
  static Publication* make(std::string_view channel, std::string_view content,
                           uint64_t published_unix_ns, const TraceContext& trace,
                           uint64_t origin_node);
  // Gives it its position and builds the frame
  // {"type":"Message","channel":C,"content":S,"offset":N}.
  // `propagate` (channel rule): the frame also carries the publication's
  // trace context as "traceparent", when it has one.
  void seal(std::string_view epoch, uint64_t offset, Buffer& scratch, bool propagate = false);
  bool sealed() const { return plain_ != nullptr; }

  // A gap notice instead of a message: positions [from, to] of `epoch` that
  // subscribers will not get ({"type":"Gap",...}, with "reset" and the
  // previous epoch when the stream's earlier state was lost). Sealed at once;
  // its offset() is `to`, where the stream stands after it.
  static Publication* make_gap(std::string_view channel, std::string_view epoch, uint64_t from,
                               uint64_t to, std::string_view previous_epoch, Buffer& scratch);
  bool is_gap() const { return gap_from_ != 0; }
  uint64_t gap_from() const { return gap_from_; }
  // Positions a gap notice reports lost (0 when from > to: only a reset).
  uint64_t gap_size() const { return offset_ >= gap_from_ ? offset_ - gap_from_ + 1 : 0; }
  const std::string& epoch() const { return epoch_; }
  uint64_t offset() const { return offset_; }

  // Who published it (a connection on a worker of this node), to tell it
  // the outcome; with an "id" the publisher asked for a Published reply.
  // Set before the publication is shared.
  void set_publisher(unsigned worker, uint64_t connection_id, const protocol::Id& id) {
    publisher_worker_ = worker;
    publisher_connection_ = connection_id;
    if (id.kind != protocol::Id::Kind::None) ack_id_ = std::make_unique<protocol::OwnedId>(id);
  }
  uint64_t publisher_connection() const { return publisher_connection_; }  // 0: none here
  unsigned publisher_worker() const { return publisher_worker_; }
  const protocol::OwnedId* ack_id() const { return ack_id_.get(); }

  // What it holds in memory (charged to the history budget).
  size_t memory_bytes() const;

  void ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  std::string_view channel() const { return channel_; }
  Frame* plain() const { return plain_; }
  // The frame for a subscriber that negotiated permessage-deflate with
  // server_max_window_bits = `window_bits` (9..15). May be plain() when
  // compression would not help.
  Frame* deflated(uint8_t window_bits, DeflaterSet& deflaters);

  // Delivery accounting, summed over the threads that deliver it; read by
  // the completion hook once the last of them is done.
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

  // How many threads will deliver it (set before it is posted to them);
  // each calls delivered_here() once it has, and the last one runs the
  // completion hook. References held by the history do not delay it.
  void expect_deliveries(uint32_t threads) {
    pending_deliveries_.store(threads, std::memory_order_relaxed);
  }
  void delivered_here() {
    if (pending_deliveries_.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
        completion_hook_ != nullptr) {
      completion_hook_(*this, completion_context_);
    }
  }

  // Called once per publication, on the thread that delivers it last (after
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
  std::string epoch_;
  uint64_t offset_ = 0;
  uint64_t gap_from_ = 0;  // nonzero: a gap notice
  std::unique_ptr<protocol::OwnedId> ack_id_;
  uint64_t publisher_connection_ = 0;
  unsigned publisher_worker_ = 0;
  std::atomic<uint32_t> pending_deliveries_{0};
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
