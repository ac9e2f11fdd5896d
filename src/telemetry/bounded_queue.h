// A bounded multi-producer queue whose try_push never blocks and never
// allocates (D. Vyukov's array queue with per-cell sequence numbers). Used
// between network threads (producers) and the span export thread (consumer).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

namespace wstrace::telemetry {

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity)
      : capacity_(capacity ? capacity : 1), cells_(new Cell[capacity_]) {
    for (size_t i = 0; i < capacity_; ++i) {
      cells_[i].seq.store(i, std::memory_order_relaxed);
    }
  }
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  // False when full: `v` is left untouched.
  bool try_push(T& v) noexcept {
    uint64_t pos = tail_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& c = cells_[pos % capacity_];
      uint64_t seq = c.seq.load(std::memory_order_acquire);
      auto diff = static_cast<int64_t>(seq - pos);
      if (diff == 0) {
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          c.value = std::move(v);
          c.seq.store(pos + 1, std::memory_order_release);
          return true;
        }
      } else if (diff < 0) {
        return false;
      } else {
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  bool try_pop(T& out) noexcept {
    uint64_t pos = head_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& c = cells_[pos % capacity_];
      uint64_t seq = c.seq.load(std::memory_order_acquire);
      auto diff = static_cast<int64_t>(seq - (pos + 1));
      if (diff == 0) {
        if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          out = std::move(c.value);
          c.value = T();
          c.seq.store(pos + capacity_, std::memory_order_release);
          return true;
        }
      } else if (diff < 0) {
        return false;
      } else {
        pos = head_.load(std::memory_order_relaxed);
      }
    }
  }

  // Approximate (exact when no push/pop is in flight).
  size_t size() const noexcept {
    uint64_t t = tail_.load(std::memory_order_acquire);
    uint64_t h = head_.load(std::memory_order_acquire);
    return t > h ? static_cast<size_t>(t - h) : 0;
  }
  size_t capacity() const noexcept { return capacity_; }

 private:
  struct Cell {
    std::atomic<uint64_t> seq{0};
    T value{};
  };
  const size_t capacity_;
  std::unique_ptr<Cell[]> cells_;
  alignas(64) std::atomic<uint64_t> tail_{0};
  alignas(64) std::atomic<uint64_t> head_{0};
};

}  // namespace wstrace::telemetry
