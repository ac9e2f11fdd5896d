// What all workers of one process share: configuration, the metrics
// registry, the node-wide channel directory and the connection counter.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "auth/keys.h"
#include "net/tls.h"
#include "pubsub/directory.h"
#include "pubsub/publication.h"
#include "server/config.h"
#include "server/ip_limits.h"
#include "server/metrics.h"
#include "stream/requests.h"
#include "stream/rules.h"
#include "telemetry/metrics.h"
#include "telemetry/telemetry.h"
#include "ws/handshake.h"

namespace wstrace::server {

class Worker;

// The metrics shard of the calling thread (workers and the cluster bridge
// each own one), or null on threads that do not record.
telemetry::Shard* thread_shard();
void set_thread_shard(telemetry::Shard* shard);

// A connection joined or left a channel whose rule has presence and/or
// join_leave (presence.cpp).
struct PresenceChange {
  std::string channel;
  uint64_t connection_id = 0;
  std::string user;
  bool joined = false;
  bool presence = false;    // the rule keeps the member list
  bool join_leave = false;  // the rule sends Join/Leave
};

struct Node {
  explicit Node(const Config& c) : cfg(c) {}

  const Config& cfg;
  ws::HandshakePolicy policy;
  uint64_t node_hash = 0;            // identifies this node in cluster envelopes
  uint64_t max_connections = 0;      // effective limit (config or fd limit)
  std::unique_ptr<telemetry::Telemetry> telemetry;
  telemetry::MetricRegistry& registry() { return telemetry->metrics(); }
  ServerMetrics metrics;
  pubsub::Directory directory;
  std::vector<Worker*> workers;
  std::atomic<int64_t> websockets{0};      // established WebSocket connections
  std::atomic<uint64_t> next_connection_id{1};
  // permessage-deflate: open connections that negotiated it, and the
  // per-connection inflaters alive (only clients that keep their context
  // have one; see docs/PROTOCOL.md). There are no per-connection deflaters.
  std::atomic<int64_t> deflate_connections{0};
  std::atomic<int64_t> connection_inflaters{0};
  std::atomic<bool> draining{false};        // shutting down: /readyz says no
  // --max-connections-per-ip, --handshake-rate-per-ip.
  std::unique_ptr<IpLimits> ip_limits;
  // --auth-*: the keys tokens are checked with (replaced on SIGHUP); null:
  // no authentication.
  std::atomic<std::shared_ptr<const auth::KeySet>> auth_keys;
  bool auth_configured = false;  // fixed at start (a reload cannot turn it on or off)
  // --tls-cert: the context new handshakes use (replaced on SIGHUP).
  std::atomic<std::shared_ptr<net::TlsContext>> tls;
  uint64_t started_unix_ns = 0;

  // Each loop iteration's publications made on this node; the cluster bridge
  // forwards them to the other nodes. Called on worker threads; the callee
  // takes its own references.
  std::function<void(const std::vector<pubsub::Publication*>&)> on_local_publish;
  // Whether the cluster link is up (always true when standalone).
  std::function<bool()> cluster_up;
  // With --redis: channel streams live in Redis and the bridge is every
  // channel's sequencer; it answers these requests (posting the replies to
  // the asking worker). Null in-process.
  std::function<void(stream::Request&&)> cluster_request;
  bool clustered() const { return static_cast<bool>(cluster_request); }
  // With --redis: a member came or went (the bridge writes it to Redis).
  std::function<void(PresenceChange&&)> cluster_presence;
  // With --api: where a backend's publish result and History reply go
  // (called on worker threads).
  std::function<void(std::vector<stream::PublishResult>&&)> api_published;
  std::function<void(stream::Reply&&)> api_reply;
  // The channel rules at start (workers and the bridge get new ones posted).
  std::shared_ptr<const stream::Rules> rules = std::make_shared<stream::Rules>();
};

}  // namespace wstrace::server
