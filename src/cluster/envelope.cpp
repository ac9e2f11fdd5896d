#include "cluster/envelope.h"

#include <cstring>

namespace wstrace::cluster {
namespace {

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

uint64_t get_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

}  // namespace

void encode_envelope(const Envelope& e, std::string& out) {
  out.clear();
  out.reserve(kEnvelopeHeader + e.content.size());
  out.append("WSt1", 4);
  put_u64(out, e.origin_node);
  put_u64(out, e.published_unix_ns);
  out.push_back(static_cast<char>(e.trace.flags));
  out.push_back(e.has_trace ? 1 : 0);
  out.append(reinterpret_cast<const char*>(e.trace.trace_id), 16);
  out.append(reinterpret_cast<const char*>(e.trace.span_id), 8);
  out.append(e.content);
}

std::optional<Envelope> decode_envelope(std::string_view b) {
  if (b.size() < kEnvelopeHeader || b.substr(0, 4) != "WSt1") return std::nullopt;
  Envelope e;
  e.origin_node = get_u64(b.data() + 4);
  e.published_unix_ns = get_u64(b.data() + 12);
  e.trace.flags = static_cast<uint8_t>(b[20]);
  uint8_t has = static_cast<uint8_t>(b[21]);
  if (has > 1) return std::nullopt;
  e.has_trace = has == 1;
  std::memcpy(e.trace.trace_id, b.data() + 22, 16);
  std::memcpy(e.trace.span_id, b.data() + 38, 8);
  if (e.has_trace && !e.trace.valid()) return std::nullopt;
  if (!e.has_trace) e.trace = TraceContext{};
  e.content = b.substr(kEnvelopeHeader);
  return e;
}

}  // namespace wstrace::cluster
