// What a worker asks a channel's sequencer (its owner thread in-process, the
// cluster bridge with --redis) and what comes back. The sequencer answers
// in the same ordered stream as the channel's publications: a worker has
// received every publication up to a reply's offset before the reply, and
// none after it, so a subscriber that joins on a reply misses nothing and
// gets nothing twice.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/protocol.h"
#include "pubsub/publication.h"
#include "util/trace_context.h"

namespace wstrace::stream {

struct Request {
  enum class Kind : uint8_t {
    Position,  // Subscribe without "since": the channel's epoch and offset
    Recover,   // Subscribe with "since": also every message after it
    History,   // History: up to `limit` kept messages
    Presence,  // Presence: who is subscribed (the owner's count and list)
  };
  Kind kind = Kind::Position;
  unsigned worker = 0;          // the asking worker: it gets the reply
  uint32_t tag = 0;             // Subscribe: the pending membership it will place
  uint64_t connection_id = 0;
  std::string channel;
  protocol::OwnedId id;         // the client message's id, echoed
  bool has_since = false;
  std::string epoch;            // since.epoch
  uint64_t since = 0;           // since.offset
  uint32_t limit = 0;           // History: 0 = all kept
  uint64_t started_unix_ns = 0;
  TraceContext parent;          // the handle span of the request (for the recovery span)
};

struct Reply {
  Request request;
  bool ok = true;               // false: no answer possible now (the cluster link is down)
  std::string epoch;
  uint64_t offset = 0;          // the stream's position the reply stands at
  bool recovered = false;       // Recover: every message after `since` is in `pubs`
  bool enabled = true;          // Presence: false when no rule gives the channel presence
  std::string presence;         // Presence: "count":N,"users":U,"clients":[...] (JSON members)
  std::vector<pubsub::Publication*> pubs;  // one reference each, for the asker
};

// The answer to a publisher: its message's position, or why it has none.
struct PublishResult {
  uint64_t connection_id = 0;
  bool has_id = false;          // the Message had an "id": answer Published
  protocol::OwnedId id;
  std::string channel;
  bool ok = true;               // false: refused (the cluster link is down)
  std::string epoch;
  uint64_t offset = 0;
};

}  // namespace wstrace::stream
