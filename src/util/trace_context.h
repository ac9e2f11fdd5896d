// The identity of a span as it travels with data (a publication, a Redis
// envelope): W3C trace id, span id and flags. The telemetry layer parses,
// formats and creates these; lower layers only carry them.
#pragma once

#include <cstdint>
#include <cstring>

namespace wstrace {

struct TraceContext {
  uint8_t trace_id[16] = {};
  uint8_t span_id[8] = {};
  uint8_t flags = 0;  // bit 0: sampled

  bool valid() const {
    static constexpr uint8_t kZero[16] = {};
    return std::memcmp(trace_id, kZero, 16) != 0 && std::memcmp(span_id, kZero, 8) != 0;
  }
  bool sampled() const { return (flags & 1) != 0; }
};

// W3C traceparent "00-<trace id>-<span id>-<flags>": 55 characters.
inline void format_traceparent(const TraceContext& t, char out[55]) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t n = 0;
  out[n++] = '0';
  out[n++] = '0';
  out[n++] = '-';
  for (uint8_t b : t.trace_id) {
    out[n++] = kHex[b >> 4];
    out[n++] = kHex[b & 15];
  }
  out[n++] = '-';
  for (uint8_t b : t.span_id) {
    out[n++] = kHex[b >> 4];
    out[n++] = kHex[b & 15];
  }
  out[n++] = '-';
  out[n++] = kHex[t.flags >> 4];
  out[n++] = kHex[t.flags & 15];
}

}  // namespace wstrace
