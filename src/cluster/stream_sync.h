// Internal to the bridge: what it keeps per channel to keep each channel's
// stream exact (see stream_sync.cpp).
#pragma once

#include <string>
#include <vector>

#include "cluster/bridge.h"

namespace wstrace::cluster {

struct Bridge::ReadResult {
  std::string epoch;
  uint64_t top = 0;
  std::vector<pubsub::Publication*> entries;  // sealed, one reference each, by offset
};

struct Bridge::Sync {
  std::string epoch;
  uint64_t last = 0;       // the last offset forwarded to the workers
  bool known = false;      // epoch and last are valid
  bool subscribed = false; // Redis confirmed the SUBSCRIBE
  bool resync = false;     // a read must also fill what was lost
  std::vector<stream::Request> waiting;  // joins waiting for a positioned read
  uint64_t read_id = 0;    // the positioned read in flight (0: none)
  bool marker_seen = false;
  bool result_ready = false;
  ReadResult result;
  std::vector<pubsub::Publication*> held;  // arrived while the read is in flight
  ~Sync() {
    for (auto* p : held) p->unref();
    for (auto* p : result.entries) p->unref();
  }
};

}  // namespace wstrace::cluster
