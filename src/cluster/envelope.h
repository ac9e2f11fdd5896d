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

// What travels on a channel's Redis Pub/Sub channel:
//   'P' <epoch> ':' <offset> ':' <envelope>   a publication and its position
//   'M' <node, 16 hex> ':' <read id>          a marker: a node's read of the
//       channel's stream, published by the read itself, so everything
//       published before the read arrives before it and nothing after.
//   'J' or 'L' <node, 16 hex> ':' <connection id> ':' <node id> '\x1f' <user>
//       a Join or Leave (channel rule join_leave): not part of the stream.
struct PubsubMessage {
  enum class Kind : uint8_t { Publication, Marker, Join, Leave };
  Kind kind = Kind::Publication;
  std::string_view epoch;     // Publication: 1-64 of [0-9A-Za-z]
  uint64_t offset = 0;        // Publication: >= 1
  std::string_view envelope;  // Publication
  uint64_t node = 0;          // Marker, Join, Leave: the node's hash
  uint64_t read = 0;          // Marker
  uint64_t connection = 0;    // Join, Leave
  std::string_view node_id;   // Join, Leave
  std::string_view user;      // Join, Leave
};
std::optional<PubsubMessage> decode_pubsub(std::string_view bytes);
std::string encode_marker(uint64_t node, uint64_t read);
std::string encode_member_event(bool join, uint64_t node, uint64_t connection,
                                std::string_view node_id, std::string_view user);
// A history entry's id "<offset>-0": the offset, or nullopt.
std::optional<uint64_t> parse_entry_id(std::string_view id);
bool valid_epoch(std::string_view epoch);

}  // namespace wstrace::cluster
