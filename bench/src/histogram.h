// A log-linear latency histogram in the spirit of HdrHistogram: values below
// 256 are counted exactly, larger ones in 128 sub-buckets per power of two
// (under 0.8% relative error), up to ~73 minutes in nanoseconds. Fixed size,
// no allocation after construction, mergeable across processes.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>

namespace wsbench {

class Histogram {
 public:
  static constexpr int kLinearBits = 8;   // 0..255 exact
  static constexpr int kSubBits = 7;      // 128 sub-buckets per octave above
  static constexpr int kMaxMsb = 42;
  static constexpr size_t kBuckets =
      (size_t{1} << kLinearBits) + size_t(kMaxMsb - kLinearBits + 1) * (size_t{1} << kSubBits);

  Histogram() : counts_(kBuckets, 0) {}

  static size_t index_of(uint64_t v) {
    if (v < (uint64_t{1} << kLinearBits)) return static_cast<size_t>(v);
    int msb = 63 - std::countl_zero(v);
    if (msb > kMaxMsb) return kBuckets - 1;
    const uint64_t sub = (v >> (msb - kSubBits)) & ((uint64_t{1} << kSubBits) - 1);
    return (size_t{1} << kLinearBits) + size_t(msb - kLinearBits) * (size_t{1} << kSubBits) + sub;
  }
  // Highest value that falls in bucket `i`.
  static uint64_t upper_of(size_t i) {
    if (i < (size_t{1} << kLinearBits)) return i;
    const size_t rel = i - (size_t{1} << kLinearBits);
    const int msb = static_cast<int>(rel >> kSubBits) + kLinearBits;
    const uint64_t sub = rel & ((size_t{1} << kSubBits) - 1);
    const int shift = msb - kSubBits;
    return (((uint64_t{1} << kSubBits) + sub + 1) << shift) - 1;
  }

  void record(uint64_t v) {
    ++counts_[index_of(v)];
    ++total_;
    if (v > max_) max_ = v;
    if (v < min_) min_ = v;
    sum_ += v;
  }
  void merge(const Histogram& o) {
    for (size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
    max_ = std::max(max_, o.max_);
    min_ = std::min(min_, o.min_);
    sum_ += o.sum_;
  }
  void reset() {
    std::fill(counts_.begin(), counts_.end(), 0);
    total_ = 0;
    max_ = 0;
    min_ = UINT64_MAX;
    sum_ = 0;
  }

  uint64_t count() const { return total_; }
  uint64_t max() const { return max_; }
  uint64_t min() const { return total_ ? min_ : 0; }
  double mean() const { return total_ ? double(sum_) / double(total_) : 0.0; }
  // The value below which a fraction `q` (0..1) of the recorded values fall
  // (the bucket's highest value, never above the recorded maximum).
  uint64_t percentile(double q) const {
    if (total_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * double(total_) + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > total_) rank = total_;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(upper_of(i), max_);
    }
    return max_;
  }

  // Sparse form for the pipes: (index, count) of the non-empty buckets.
  template <typename W>
  void write(W& w) const {
    uint64_t nonzero = 0;
    for (uint64_t c : counts_) nonzero += c != 0;
    w.u64(total_);
    w.u64(max_);
    w.u64(min_);
    w.u64(sum_);
    w.u64(nonzero);
    for (size_t i = 0; i < kBuckets; ++i) {
      if (counts_[i] != 0) {
        w.u64(i);
        w.u64(counts_[i]);
      }
    }
  }
  template <typename R>
  bool read(R& r) {
    reset();
    total_ = r.u64();
    max_ = r.u64();
    min_ = r.u64();
    sum_ = r.u64();
    uint64_t n = r.u64();
    for (uint64_t k = 0; k < n && r.ok(); ++k) {
      uint64_t i = r.u64();
      uint64_t c = r.u64();
      if (i >= kBuckets) return false;
      counts_[i] += c;
    }
    return r.ok();
  }

 private:
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
  uint64_t max_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t sum_ = 0;
};

}  // namespace wsbench
