// A token bucket: `rate` tokens per second, at most `burst` saved up. Each
// take() spends one token if there is one. Over any interval of T seconds it
// allows at most burst + rate * T, whatever the rate (no fixed windows, no
// counter that wraps). I/O-free: the caller passes the time.
#pragma once

#include <algorithm>
#include <cstdint>

namespace wstrace {

class TokenBucket {
 public:
  // A bucket starts full.
  void reset(double burst, uint64_t now_ns) {
    tokens_ = burst;
    last_ns_ = now_ns;
  }

  // Spends one token at `now_ns` (monotonic); false when none is left.
  bool take(double rate, double burst, uint64_t now_ns) {
    if (now_ns > last_ns_) {
      tokens_ = std::min(burst, tokens_ + rate * static_cast<double>(now_ns - last_ns_) * 1e-9);
      last_ns_ = now_ns;
    }
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

  double tokens() const { return tokens_; }
  // Whether it would be full at `now_ns` (then it holds no state worth keeping).
  bool full(double rate, double burst, uint64_t now_ns) const {
    const double dt = now_ns > last_ns_ ? static_cast<double>(now_ns - last_ns_) * 1e-9 : 0.0;
    return tokens_ + rate * dt >= burst;
  }

 private:
  double tokens_ = 0;
  uint64_t last_ns_ = 0;
};

}  // namespace wstrace
