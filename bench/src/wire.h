// Messages between the parent and its worker processes over pipes: a 4-byte
// length, a 1-byte kind, then fields as little-endian u64s and strings.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace wsbench {

enum class Kind : uint8_t {
  // worker -> parent
  Ready = 1,     // connections set up (u64 phase)
  Progress = 2,  // live counters + latency histogram since the last one
  Sent = 3,      // per-channel published counts (fanout, after publishing stopped)
  Final = 4,     // the worker's Result
  // parent -> worker
  Go = 10,       // u64 start time (CLOCK_MONOTONIC ns)
  Expect = 11,   // per-channel totals the subscribers must receive
  Finish = 12,   // end the hold (connect scenario)
};

class Writer {
 public:
  explicit Writer(Kind k) { buf_.resize(5); buf_[4] = static_cast<char>(k); }
  void u64(uint64_t v) { buf_.append(reinterpret_cast<const char*>(&v), 8); }
  void f64(double v) { buf_.append(reinterpret_cast<const char*>(&v), 8); }
  void str(std::string_view s) {
    u64(s.size());
    buf_.append(s);
  }
  // Length-prefixes the message and writes it whole (blocking).
  bool send(int fd) {
    const uint32_t len = static_cast<uint32_t>(buf_.size() - 4);
    std::memcpy(buf_.data(), &len, 4);
    size_t off = 0;
    while (off < buf_.size()) {
      ssize_t n = ::write(fd, buf_.data() + off, buf_.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      off += static_cast<size_t>(n);
    }
    return true;
  }

 private:
  std::string buf_;
};

class Reader {
 public:
  Reader(const char* p, size_t n) : p_(p), end_(p + n) {}
  uint64_t u64() {
    uint64_t v = 0;
    if (end_ - p_ < 8) {
      ok_ = false;
      return 0;
    }
    std::memcpy(&v, p_, 8);
    p_ += 8;
    return v;
  }
  double f64() {
    double v = 0;
    if (end_ - p_ < 8) {
      ok_ = false;
      return 0;
    }
    std::memcpy(&v, p_, 8);
    p_ += 8;
    return v;
  }
  std::string str() {
    uint64_t n = u64();
    if (!ok_ || uint64_t(end_ - p_) < n) {
      ok_ = false;
      return {};
    }
    std::string s(p_, n);
    p_ += n;
    return s;
  }
  bool ok() const { return ok_; }

 private:
  const char* p_;
  const char* end_;
  bool ok_ = true;
};

// Accumulates bytes from a pipe and yields whole messages.
class MessageBuffer {
 public:
  void append(const char* p, size_t n) { data_.append(p, n); }
  // True and fills kind/body when a whole message is buffered.
  bool next(Kind& kind, std::string& body) {
    if (data_.size() < 5) return false;
    uint32_t len;
    std::memcpy(&len, data_.data(), 4);
    if (data_.size() < size_t{4} + len) return false;
    kind = static_cast<Kind>(data_[4]);
    body.assign(data_, 5, len - 1);
    data_.erase(0, size_t{4} + len);
    return true;
  }

 private:
  std::string data_;
};

}  // namespace wsbench
