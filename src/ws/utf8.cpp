#include "ws/utf8.h"

#include <simdjson.h>

#include <cstring>

namespace wstrace::ws {
namespace {

// States: 0 boundary; 1/2/3 need that many continuation bytes (80..BF);
// 4 after E0 (next A0..BF); 5 after ED (next 80..9F, no surrogates);
// 6 after F0 (next 90..BF); 7 after F4 (next 80..8F, <= U+10FFFF).
// kBad marks an invalid byte.
constexpr uint8_t kBad = 0xFF;

inline uint8_t step(uint8_t state, uint8_t b) {
  switch (state) {
    case 0:
      if (b < 0x80) return 0;
      if (b < 0xC2) return kBad;
      if (b < 0xE0) return 1;
      if (b == 0xE0) return 4;
      if (b == 0xED) return 5;
      if (b < 0xF0) return 2;
      if (b == 0xF0) return 6;
      if (b < 0xF4) return 3;
      if (b == 0xF4) return 7;
      return kBad;
    case 1:
    case 2:
    case 3:
      return (b & 0xC0) == 0x80 ? static_cast<uint8_t>(state - 1) : kBad;
    case 4:
      return (b >= 0xA0 && b <= 0xBF) ? 1 : kBad;
    case 5:
      return (b >= 0x80 && b <= 0x9F) ? 1 : kBad;
    case 6:
      return (b >= 0x90 && b <= 0xBF) ? 2 : kBad;
    case 7:
      return (b >= 0x80 && b <= 0x8F) ? 2 : kBad;
    default:
      return kBad;
  }
}

}  // namespace

bool Utf8Validator::feed(const uint8_t* p, size_t n) {
  if (state_ == kBad) return false;  // once invalid, always invalid
  uint8_t s = state_;
  size_t i = 0;
  while (i < n) {
    if (s == 0) {
      // Skip ASCII eight bytes at a time.
      while (i + 8 <= n) {
        uint64_t v;
        std::memcpy(&v, p + i, 8);
        if (v & 0x8080808080808080ull) break;
        i += 8;
      }
      if (i == n) break;
    }
    s = step(s, p[i]);
    if (s == kBad) {
      state_ = kBad;
      return false;
    }
    ++i;
  }
  state_ = s;
  return true;
}

bool is_valid_utf8(const uint8_t* p, size_t n) {
  return simdjson::validate_utf8(reinterpret_cast<const char*>(p), n);
}

}  // namespace wstrace::ws
