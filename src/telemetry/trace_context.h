// Trace and span ids, span contexts and W3C Trace Context (`traceparent`,
// `tracestate`) parsing and formatting. I/O-free; fuzzed by
// fuzz/telemetry_traceparent_fuzz.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wstrace::telemetry {

inline constexpr uint8_t kFlagSampled = 0x01;

struct TraceId {
  std::array<uint8_t, 16> bytes{};

  bool valid() const;  // not all zero
  std::string hex() const;
  void to_hex(char out[32]) const;
  // Exactly 32 lowercase hex digits (uppercase accepted here: this is for
  // admin filters, not for traceparent). All-zero is accepted; check valid().
  static std::optional<TraceId> from_hex(std::string_view hex);
  friend bool operator==(const TraceId&, const TraceId&) = default;
};

struct SpanId {
  std::array<uint8_t, 8> bytes{};

  bool valid() const;
  std::string hex() const;
  void to_hex(char out[16]) const;
  static std::optional<SpanId> from_hex(std::string_view hex);
  friend bool operator==(const SpanId&, const SpanId&) = default;
};

struct SpanContext {
  TraceId trace_id;
  SpanId span_id;
  uint8_t trace_flags = 0;
  bool remote = false;      // came from another process (traceparent)
  std::string trace_state;  // opaque W3C tracestate, possibly empty

  bool valid() const { return trace_id.valid() && span_id.valid(); }
  bool sampled() const { return (trace_flags & kFlagSampled) != 0; }
};

// Fast ids from a per-thread generator seeded from getrandom(); never all-zero.
TraceId new_trace_id() noexcept;
SpanId new_span_id() noexcept;

// Strict W3C traceparent: "vv-<32 hex>-<16 hex>-ff", lowercase hex only.
// Version 00 must be exactly 55 characters; version ff is invalid; a higher
// version is parsed by its first 55 characters if what follows starts with
// '-'. All-zero ids are rejected. Surrounding spaces/tabs (HTTP OWS) are
// trimmed. The result has remote = true and an empty trace_state.
std::optional<SpanContext> parse_traceparent(std::string_view header) noexcept;

// Version 00 form of ctx (55 characters).
std::string format_traceparent(const SpanContext& ctx);
void format_traceparent(const SpanContext& ctx, char out[55]);

inline constexpr size_t kMaxTraceStateLength = 512;

// Loose tracestate: trimmed, kept as an opaque string when it is at most 512
// printable ASCII characters; otherwise discarded (empty result).
std::string parse_tracestate(std::string_view header);

}  // namespace wstrace::telemetry
