#include "telemetry/trace_context.h"

#include <sys/random.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "util/trace_context.h"

namespace wstrace::telemetry {

namespace {

constexpr char kHex[] = "0123456789abcdef";

constexpr std::array<int8_t, 256> make_lower_hex_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) {
    v = -1;
  }
  for (int c = '0'; c <= '9'; ++c) {
    t[static_cast<size_t>(c)] = static_cast<int8_t>(c - '0');
  }
  for (int c = 'a'; c <= 'f'; ++c) {
    t[static_cast<size_t>(c)] = static_cast<int8_t>(c - 'a' + 10);
  }
  return t;
}
constexpr std::array<int8_t, 256> kLowerHex = make_lower_hex_table();

// -1 unless c is a lowercase hex digit.
inline int lower_hex_value(char c) { return kLowerHex[static_cast<unsigned char>(c)]; }

inline int any_hex_value(char c) {
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return lower_hex_value(c);
}

template <size_t N>
bool decode_hex(std::string_view s, std::array<uint8_t, N>& out, bool lower_only) {
  if (s.size() != 2 * N) {
    return false;
  }
  for (size_t i = 0; i < N; ++i) {
    int hi = lower_only ? lower_hex_value(s[2 * i]) : any_hex_value(s[2 * i]);
    int lo = lower_only ? lower_hex_value(s[2 * i + 1]) : any_hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return false;
    }
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

template <size_t N>
void encode_hex(const std::array<uint8_t, N>& in, char* out) {
  for (size_t i = 0; i < N; ++i) {
    out[2 * i] = kHex[in[i] >> 4];
    out[2 * i + 1] = kHex[in[i] & 0xf];
  }
}

template <size_t N>
bool nonzero(const std::array<uint8_t, N>& a) {
  for (uint8_t b : a) {
    if (b) {
      return true;
    }
  }
  return false;
}

// splitmix64 over a per-thread state seeded from getrandom(): statistically
// good, a few instructions per 64 bits. Ids need uniqueness and uniformity
// (the ratio sampler reads them), not secrecy.
struct Rng {
  uint64_t state;
  Rng() {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof seed)) {
      // Very early boot or seccomp: mix clock, thread id and an address.
      seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
             std::hash<std::thread::id>{}(std::this_thread::get_id()) ^
             reinterpret_cast<uintptr_t>(this);
    }
    state = seed;
  }
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
};

thread_local Rng t_rng;

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

bool TraceId::valid() const { return nonzero(bytes); }
bool SpanId::valid() const { return nonzero(bytes); }

void TraceId::to_hex(char out[32]) const { encode_hex(bytes, out); }
void SpanId::to_hex(char out[16]) const { encode_hex(bytes, out); }

std::string TraceId::hex() const {
  std::string s(32, '0');
  to_hex(s.data());
  return s;
}

std::string SpanId::hex() const {
  std::string s(16, '0');
  to_hex(s.data());
  return s;
}

std::optional<TraceId> TraceId::from_hex(std::string_view hex) {
  TraceId id;
  if (!decode_hex(hex, id.bytes, false)) {
    return std::nullopt;
  }
  return id;
}

std::optional<SpanId> SpanId::from_hex(std::string_view hex) {
  SpanId id;
  if (!decode_hex(hex, id.bytes, false)) {
    return std::nullopt;
  }
  return id;
}

TraceId new_trace_id() noexcept {
  TraceId id;
  uint64_t a, b;
  do {
    a = t_rng.next();
    b = t_rng.next();
  } while (a == 0 && b == 0);
  std::memcpy(id.bytes.data(), &a, 8);
  std::memcpy(id.bytes.data() + 8, &b, 8);
  return id;
}

SpanId new_span_id() noexcept {
  SpanId id;
  uint64_t a;
  do {
    a = t_rng.next();
  } while (a == 0);
  std::memcpy(id.bytes.data(), &a, 8);
  return id;
}

std::optional<SpanContext> parse_traceparent(std::string_view header) noexcept {
  std::string_view s = trim_ows(header);
  if (s.size() < 55) {
    return std::nullopt;
  }
  int v_hi = lower_hex_value(s[0]);
  int v_lo = lower_hex_value(s[1]);
  if (v_hi < 0 || v_lo < 0 || s[2] != '-' || s[35] != '-' || s[52] != '-') {
    return std::nullopt;
  }
  int version = v_hi << 4 | v_lo;
  if (version == 0xff) {
    return std::nullopt;
  }
  if (version == 0 && s.size() != 55) {
    return std::nullopt;
  }
  if (s.size() > 55 && s[55] != '-') {
    return std::nullopt;  // a future version may only append "-..." fields
  }
  SpanContext ctx;
  std::array<uint8_t, 1> flags{};
  if (!decode_hex(s.substr(3, 32), ctx.trace_id.bytes, true) ||
      !decode_hex(s.substr(36, 16), ctx.span_id.bytes, true) ||
      !decode_hex(s.substr(53, 2), flags, true)) {
    return std::nullopt;
  }
  if (!ctx.trace_id.valid() || !ctx.span_id.valid()) {
    return std::nullopt;
  }
  // Version 00 defines only the sampled bit; keep the others only for
  // versions that may define them (the spec allows either).
  ctx.trace_flags = version == 0 ? static_cast<uint8_t>(flags[0] & kFlagSampled) : flags[0];
  ctx.remote = true;
  return ctx;
}

void format_traceparent(const SpanContext& ctx, char out[55]) {
  TraceContext t;
  std::memcpy(t.trace_id, ctx.trace_id.bytes.data(), sizeof t.trace_id);
  std::memcpy(t.span_id, ctx.span_id.bytes.data(), sizeof t.span_id);
  t.flags = ctx.trace_flags & kFlagSampled;
  wstrace::format_traceparent(t, out);
}

std::string format_traceparent(const SpanContext& ctx) {
  std::string s(55, '0');
  format_traceparent(ctx, s.data());
  return s;
}

std::string parse_tracestate(std::string_view header) {
  std::string_view s = trim_ows(header);
  if (s.size() > kMaxTraceStateLength) {
    return {};
  }
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) {
      return {};
    }
  }
  return std::string(s);
}

}  // namespace wstrace::telemetry
