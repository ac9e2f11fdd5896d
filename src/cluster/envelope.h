// The binary-safe envelope a publication travels in between nodes:
//
//   "WSt1" | origin node u64 | published unix ns u64 | trace flags u8 |
//   has-trace u8 | trace id [16] | span id [8] | content bytes...
//
// (integers little-endian). The channel is the Redis channel itself. Decoding
// is I/O-free and rejects anything malformed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "util/trace_context.h"

namespace wstrace::cluster {

struct Envelope {
  uint64_t origin_node = 0;
  uint64_t published_unix_ns = 0;
  bool has_trace = false;
  TraceContext trace;
  std::string_view content;  // points into the decoded buffer
};

constexpr size_t kEnvelopeHeader = 46;

void encode_envelope(const Envelope& e, std::string& out);
std::optional<Envelope> decode_envelope(std::string_view bytes);

}  // namespace wstrace::cluster
