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

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

}  // namespace

bool valid_epoch(std::string_view e) {
  if (e.empty() || e.size() > 64) return false;
  for (char c : e) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
      return false;
    }
  }
  return true;
}

std::optional<PubsubMessage> decode_pubsub(std::string_view b) {
  if (b.empty()) return std::nullopt;
  PubsubMessage m;
  if (b[0] == 'P') {
    const size_t c1 = b.find(':', 1);
    if (c1 == std::string_view::npos) return std::nullopt;
    const size_t c2 = b.find(':', c1 + 1);
    if (c2 == std::string_view::npos) return std::nullopt;
    m.kind = PubsubMessage::Kind::Publication;
    m.epoch = b.substr(1, c1 - 1);
    if (!valid_epoch(m.epoch) || !parse_u64(b.substr(c1 + 1, c2 - c1 - 1), m.offset) ||
        m.offset == 0) {
      return std::nullopt;
    }
    m.envelope = b.substr(c2 + 1);
    return m;
  }
  if (b[0] == 'M' || b[0] == 'J' || b[0] == 'L') {
    const size_t c = b.find(':', 1);
    if (c != 17) return std::nullopt;
    uint64_t node = 0;
    for (size_t i = 1; i < 17; ++i) {
      const char ch = b[i];
      uint64_t d;
      if (ch >= '0' && ch <= '9') {
        d = static_cast<uint64_t>(ch - '0');
      } else if (ch >= 'a' && ch <= 'f') {
        d = static_cast<uint64_t>(ch - 'a' + 10);
      } else {
        return std::nullopt;
      }
      node = (node << 4) | d;
    }
    m.node = node;
    if (b[0] == 'M') {
      m.kind = PubsubMessage::Kind::Marker;
      if (!parse_u64(b.substr(18), m.read)) return std::nullopt;
      return m;
    }
    m.kind = b[0] == 'J' ? PubsubMessage::Kind::Join : PubsubMessage::Kind::Leave;
    const size_t c2 = b.find(':', 18);
    if (c2 == std::string_view::npos || !parse_u64(b.substr(18, c2 - 18), m.connection) ||
        m.connection == 0) {
      return std::nullopt;
    }
    const std::string_view rest = b.substr(c2 + 1);
    const size_t sep = rest.find('\x1f');
    if (sep == std::string_view::npos || sep == 0) return std::nullopt;
    m.node_id = rest.substr(0, sep);
    m.user = rest.substr(sep + 1);
    return m;
  }
  return std::nullopt;
}

std::string encode_member_event(bool join, uint64_t node, uint64_t connection,
                                std::string_view node_id, std::string_view user) {
  std::string out = encode_marker(node, 0);
  out[0] = join ? 'J' : 'L';
  out.resize(18);
  out += std::to_string(connection);
  out.push_back(':');
  out.append(node_id);
  out.push_back('\x1f');
  out.append(user);
  return out;
}

std::string encode_marker(uint64_t node, uint64_t read) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "M";
  for (int i = 15; i >= 0; --i) out.push_back(kHex[(node >> (4 * i)) & 15]);
  out.push_back(':');
  out += std::to_string(read);
  return out;
}

std::optional<uint64_t> parse_entry_id(std::string_view id) {
  const size_t dash = id.find('-');
  if (dash == std::string_view::npos || id.substr(dash + 1) != "0") return std::nullopt;
  uint64_t v = 0;
  if (!parse_u64(id.substr(0, dash), v) || v == 0) return std::nullopt;
  return v;
}

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
