// Admission control for the publish path toward Redis: publications queued
// for the bridge or awaiting Redis' reply, bounded both in number and in
// bytes. Worker threads admit, the bridge thread releases; lock-free.
//
// The bound is strict: admit() reserves before it checks, so threads that
// admit at the same time may refuse more than needed, never accept more than
// the budget. One exception keeps a publication larger than the whole byte
// budget from being refused for ever: it is admitted when nothing else is
// pending (memory is then bounded by that one publication).
#pragma once

#include <atomic>
#include <cstddef>

namespace wstrace::cluster {

class PublishBudget {
 public:
  PublishBudget(size_t max_count, size_t max_bytes)
      : max_count_(max_count), max_bytes_(max_bytes) {}
  PublishBudget(const PublishBudget&) = delete;
  PublishBudget& operator=(const PublishBudget&) = delete;

  // Admits the longest prefix of n publications (size_of(i): the bytes the
  // i-th one holds) that fits the budget; returns its length. The caller
  // releases exactly what was admitted, each with the same size.
  template <typename SizeOf>
  size_t admit(size_t n, SizeOf&& size_of) {
    if (n == 0) return 0;
    size_t total = 0;
    for (size_t i = 0; i < n; ++i) total += size_of(i);
    const size_t prev_count = count_.fetch_add(n, std::memory_order_relaxed);
    const size_t prev_bytes = bytes_.fetch_add(total, std::memory_order_relaxed);
    size_t k = 0;
    size_t used = 0;
    for (; k < n; ++k) {
      const size_t s = size_of(k);
      if (prev_count + k + 1 > max_count_) break;
      const bool alone = prev_bytes == 0 && k == 0;  // nothing else pending
      if (!alone && prev_bytes + used + s > max_bytes_) break;
      used += s;
    }
    if (k < n) {
      count_.fetch_sub(n - k, std::memory_order_relaxed);
      bytes_.fetch_sub(total - used, std::memory_order_relaxed);
    }
    return k;
  }

  void release(size_t count, size_t bytes) {
    count_.fetch_sub(count, std::memory_order_relaxed);
    bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  }

  // Reserved right now (admitted and not released, plus reservations being
  // checked on other threads).
  size_t count() const { return count_.load(std::memory_order_relaxed); }
  size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  size_t max_count() const { return max_count_; }
  size_t max_bytes() const { return max_bytes_; }

 private:
  const size_t max_count_;
  const size_t max_bytes_;
  std::atomic<size_t> count_{0};
  std::atomic<size_t> bytes_{0};
};

}  // namespace wstrace::cluster
