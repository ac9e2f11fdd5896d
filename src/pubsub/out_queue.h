// A connection's outbound queue: references to shared frames, the first one
// possibly partly written. Empty connections hold no storage. Used only when
// a frame cannot be written at once (corked replies, a full socket).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <cstdlib>

#include "pubsub/frame.h"

namespace wstrace::pubsub {

class OutQueue {
 public:
  // Bookkeeping counted against --max-backpressure for every queued frame,
  // so memory stays bounded even for a flood of tiny frames.
  static constexpr uint32_t kEntryOverhead = 16;

  OutQueue() = default;
  ~OutQueue() { clear(); std::free(ring_); }
  OutQueue(const OutQueue&) = delete;
  OutQueue& operator=(const OutQueue&) = delete;

  bool empty() const { return count_ == 0; }
  uint32_t count() const { return count_; }
  // Unwritten frame bytes plus bookkeeping.
  uint64_t bytes() const { return bytes_; }

  // Takes over one reference to `f`; `offset` bytes of it are already written.
  void push(Frame* f, uint32_t offset = 0) {
    if (count_ == cap_) grow();
    ring_[(head_ + count_) & (cap_ - 1)] = Entry{f, offset};
    ++count_;
    bytes_ += f->size() - offset + kEntryOverhead;
  }

  // Fills up to `max` iovecs with the unwritten bytes, oldest first.
  int fill(iovec* iov, int max) const {
    int n = 0;
    for (uint32_t i = 0; i < count_ && n < max; ++i, ++n) {
      const Entry& e = ring_[(head_ + i) & (cap_ - 1)];
      iov[n].iov_base = const_cast<uint8_t*>(e.frame->data() + e.offset);
      iov[n].iov_len = e.frame->size() - e.offset;
    }
    return n;
  }

  // `n` bytes were written: drops completed frames. Returns how many completed.
  uint32_t consume(size_t n) {
    return consume(n, [](const Frame&) {});
  }
  // Same, calling on_written(frame) for each completed frame before it is
  // released.
  template <typename F>
  uint32_t consume(size_t n, F&& on_written) {
    uint32_t done = 0;
    while (n > 0 && count_ > 0) {
      Entry& e = ring_[head_];
      size_t left = e.frame->size() - e.offset;
      if (n < left) {
        e.offset += static_cast<uint32_t>(n);
        bytes_ -= n;
        break;
      }
      n -= left;
      bytes_ -= left + kEntryOverhead;
      on_written(*e.frame);
      e.frame->unref();
      head_ = (head_ + 1) & (cap_ - 1);
      --count_;
      ++done;
    }
    if (count_ == 0) head_ = 0;
    return done;
  }

  // Whether the oldest frame is partly written (a Close must not cut it).
  bool front_partial() const { return count_ > 0 && ring_[head_].offset > 0; }

  // Drops every frame except a partly written first one and those that start
  // within the first `committed` unwritten bytes (a TLS record already
  // encrypted from them waits to be sent: they are on their way); returns
  // how many frames were dropped.
  uint32_t drop_unstarted(size_t committed = 0) {
    uint32_t keep = front_partial() ? 1 : 0;
    size_t at = 0;  // unwritten bytes before frame i
    for (uint32_t i = 0; i < count_ && at < committed; ++i) {
      const Entry& e = ring_[(head_ + i) & (cap_ - 1)];
      at += e.frame->size() - e.offset;
      if (i + 1 > keep) keep = i + 1;
    }
    uint32_t dropped = 0;
    while (count_ > keep) {
      Entry& e = ring_[(head_ + count_ - 1) & (cap_ - 1)];
      bytes_ -= e.frame->size() - e.offset + kEntryOverhead;
      e.frame->unref();
      --count_;
      ++dropped;
    }
    return dropped;
  }

  void clear() {
    while (count_ > 0) {
      ring_[head_].frame->unref();
      head_ = (head_ + 1) & (cap_ - 1);
      --count_;
    }
    head_ = 0;
    bytes_ = 0;
  }

  // Frees the storage of an empty queue (idle connections hold none).
  void shrink() {
    if (count_ == 0 && ring_ != nullptr) {
      std::free(ring_);
      ring_ = nullptr;
      cap_ = 0;
      head_ = 0;
    }
  }

 private:
  struct Entry {
    Frame* frame;
    uint32_t offset;
  };

  void grow() {
    uint32_t cap = cap_ ? cap_ * 2 : 8;
    auto* ring = static_cast<Entry*>(std::malloc(sizeof(Entry) * cap));
    if (ring == nullptr) std::abort();  // out of memory
    for (uint32_t i = 0; i < count_; ++i) ring[i] = ring_[(head_ + i) & (cap_ - 1)];
    std::free(ring_);
    ring_ = ring;
    cap_ = cap;
    head_ = 0;
  }

  Entry* ring_ = nullptr;
  uint32_t head_ = 0;
  uint32_t count_ = 0;
  uint32_t cap_ = 0;
  // 32 bits keep an idle connection small; the configuration caps
  // --max-backpressure (checked after every push) and frame sizes at 1 GiB.
  uint32_t bytes_ = 0;
};

}  // namespace wstrace::pubsub
