// UTF-8 validation (RFC 3629; no surrogates, no overlongs, <= U+10FFFF).
// Incremental: a message may be checked in pieces (fragments) and fails at
// the first byte that cannot start or continue a valid sequence.
#pragma once

#include <cstddef>
#include <cstdint>

namespace wstrace::ws {

class Utf8Validator {
 public:
  // Feeds bytes; false as soon as the input cannot be valid UTF-8.
  bool feed(const uint8_t* p, size_t n);
  // True when the bytes fed so far end on a character boundary.
  bool complete() const { return state_ == 0; }
  void reset() { state_ = 0; }
  uint8_t state() const { return state_; }

 private:
  uint8_t state_ = 0;  // 0 = at a boundary; else which continuation is expected
};

// Whole-buffer check (fast path for unfragmented messages).
bool is_valid_utf8(const uint8_t* p, size_t n);

}  // namespace wstrace::ws
