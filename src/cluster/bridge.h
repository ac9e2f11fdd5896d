// The Redis bridge: joins this node to a cluster, and is the sequencer of
// every channel in cluster mode.
//
// - Subscribes in Redis to a channel only while this node has local
//   subscribers (the pubsub::Directory tells it), batching the SUBSCRIBE and
//   UNSUBSCRIBE commands of one loop iteration.
// - Publishes this node's publications with one Lua script each (pipelined):
//   Redis gives the channel's next offset, keeps it in the channel's history
//   (a stream, trimmed by the channel rule) and PUBLISHes it, atomically, so
//   every node sees every channel in one order. Each node, this one
//   included, delivers what comes back on its subscription
//   (stream_sync.cpp keeps each channel's stream exact: gaps filled from the
//   history or reported, epochs followed, joins positioned by markers).
// - Runs hiredis on its own event loop thread (one thread, two connections:
//   one subscribed, one for PUBLISH). When Redis goes away it keeps the
//   node serving its local clients, drops (and counts) what it cannot send,
//   reconnects with backoff and jitter, and resubscribes everything.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cluster/publish_budget.h"
#include "cluster/redis_url.h"
#include "net/event_loop.h"
#include "pubsub/publication.h"
#include "stream/requests.h"
#include "stream/rules.h"
#include "telemetry/metrics.h"

struct redisAsyncContext;

namespace wstrace::cluster {

struct PubsubMessage;

#define WSTRACE_CLUSTER_METRICS(M)                                                               \
  M(Counter, published, "websocket.pubsub.published",                                           \
    "Publications sent to the cluster (PUBLISH)", "{message}")                                   \
  M(Counter, received, "websocket.pubsub.received",                                             \
    "Publications from other nodes delivered here", "{message}")                                 \
  M(Counter, dropped, "websocket.pubsub.dropped",                                               \
    "Publications that could not reach the cluster", "{message}",                                \
    (std::vector<telemetry::LabelSet>{{{"reason", "link_down"}}, {{"reason", "queue_full"}},      \
                                      {{"reason", "publish_error"}}, {{"reason", "malformed"}}})) \
  M(Counter, publish_errors, "websocket.pubsub.publish.errors",                                 \
    "PUBLISH commands that failed", "{command}")                                                 \
  M(Counter, reconnects, "websocket.pubsub.reconnects",                                         \
    "Connections to Redis re-established after one was lost (not the first of each)",            \
    "{connection}")                                                                              \
  M(Counter, stream_reads, "websocket.pubsub.stream.reads",                                     \
    "Reads of a channel's stream position and history in Redis", "{read}")                       \
  M(Counter, resyncs, "websocket.pubsub.stream.resyncs",                                        \
    "Channels re-read after a lost link or a hole in the received offsets", "{channel}")         \
  M(Counter, lost, "websocket.pubsub.stream.lost",                                              \
    "Positions this node could not get from Redis (neither live nor in history)", "{message}")   \
  M(Histogram, lag, "websocket.pubsub.lag",                                                      \
    "From a publication on one node to its arrival on another", "s",                            \
    std::vector<double>{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,  \
                        0.25, 0.5, 1, 2.5, 5})

WSTRACE_METRICS_STRUCT(ClusterMetrics, WSTRACE_CLUSTER_METRICS);

struct BridgeOptions {
  RedisUrl url;
  std::string node_id;
  uint64_t node_hash = 0;         // this node's id in envelopes
  std::string prefix = "wstrace:";  // Redis channel = prefix + channel
  // Publications queued for Redis or awaiting its reply: more are dropped
  // (queue_full). Bytes are each publication's PUBLISH: content, channel and
  // envelope header.
  size_t max_pending = 100000;
  size_t max_pending_bytes = size_t{64} << 20;
  uint64_t connect_timeout_ns = 3'000'000'000ull;
  uint64_t backoff_min_ns = 100'000'000ull;
  uint64_t backoff_max_ns = 5'000'000'000ull;
  uint64_t health_timeout_ns = 3'000'000'000ull;  // no PING reply for this long: reconnect
  uint64_t stream_ttl_ns = 3600'000'000'000ull;   // a channel's position and history keys
  // A node's presence entries outlive it this long (it refreshes them every third).
  uint64_t presence_ttl_ns = 30'000'000'000ull;
  std::shared_ptr<const stream::Rules> rules = std::make_shared<stream::Rules>();
};

class Bridge {
 public:
  // Receives sealed publications (and gap notices) to deliver on this node;
  // takes over one reference each.
  using Deliver = std::function<void(std::vector<pubsub::Publication*>&&)>;
  // Posts a reply to the worker that asked (reply.request.worker).
  using ReplyTo = std::function<void(stream::Reply&&)>;
  // Posts publish results to a worker.
  using ResultsTo = std::function<void(unsigned worker, std::vector<stream::PublishResult>&&)>;

  // Registers the cluster metrics (before the registry is frozen).
  Bridge(BridgeOptions options, telemetry::MetricRegistry& registry, Deliver deliver,
         ReplyTo reply, ResultsTo results);
  ~Bridge();
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  void start(telemetry::Shard& shard);
  void stop();

  // Any thread: the node gained its first (true) or lost its last (false)
  // subscriber of `channel`.
  void set_interest(const std::string& channel, bool active);
  // Any thread: forwards this node's publications (takes its own references).
  void publish(const std::vector<pubsub::Publication*>& batch);
  // Any thread: a worker's question about a channel's stream.
  void request(stream::Request request);
  // Any thread: new channel rules (SIGHUP).
  void set_rules(std::shared_ptr<const stream::Rules> rules);

  // The control plane (control.cpp): requests every node acts on (the
  // server API's disconnect, subscribe, info, ...) and their answers, over
  // two Redis channels of their own: <prefix>__control, which every node
  // subscribes to, and <prefix>__reply:<node id>, this node's answers.
  // Called on the bridge thread: a control request (from any node, this one
  // included), and an answer addressed to this node.
  using ControlHandler = std::function<void(std::string payload)>;
  void set_control_handlers(ControlHandler on_request, ControlHandler on_reply);
  // Any thread: PUBLISHes a control request; `done(receivers)` on the bridge
  // thread with how many nodes got it (-1: the link is down).
  void control_request(std::string payload, std::function<void(long)> done);
  // Any thread: answers the node `to`.
  void control_reply(const std::string& to, std::string payload);

  // Presence and Join/Leave across the cluster (presence.cpp): each node
  // keeps its members in a Redis sorted set per channel (score: when the
  // entry expires, refreshed while the node lives) and PUBLISHes Join and
  // Leave on the channel. Any thread: one of this node's connections joined
  // or left a channel whose rule has presence and/or join_leave.
  void presence_update(std::string channel, uint64_t connection, std::string user, bool joined,
                       bool presence, bool join_leave);
  // Called on the bridge thread with a Join/Leave frame for the channel's
  // local subscribers; `subject`: the connection it is about when it is on
  // this node (it does not get it), else 0.
  using MemberEvent =
      std::function<void(const std::string& channel, std::string frame, bool join, uint64_t subject)>;
  void set_member_events(MemberEvent on_event) { on_member_event_ = std::move(on_event); }

  bool link_up() const { return link_up_.load(std::memory_order_relaxed); }
  size_t redis_subscriptions() const { return redis_subs_.load(std::memory_order_relaxed); }

 private:
  class Link;
  friend class Link;
  struct Sync;
  struct ReadResult;

  void connect(Link& link);
  void on_connected(Link& link);
  void on_ready(Link& link);
  void log_drops();
  void health_check();
  void on_disconnected(Link& link, const char* why);
  void schedule_reconnect(Link& link);
  void update_link_state();
  void reconcile_subscriptions();
  void flush_publications();
  void on_message(const char* channel, size_t channel_len, const char* payload, size_t len);
  void on_publish_reply(const void* reply, bool error);
  void on_subscription_reply(std::string_view channel, bool subscribe);
  void subscribe_control();
  void read_presence(stream::Request r);
  void refresh_presence();
  void on_member_event(std::string_view channel, const PubsubMessage& m);

  // Streams (stream_sync.cpp).
  void load_scripts();
  std::string pubsub_channel(std::string_view channel) const;
  const stream::ChannelRule* rule_for(std::string_view channel);
  void on_request(stream::Request& r);
  void fail_request(stream::Request& r);
  void maybe_read(const std::string& channel, Sync& s);
  void read_history(stream::Request r);
  void on_read_reply(const std::string& channel, uint64_t read_id, const void* reply);
  void on_marker(std::string_view channel, uint64_t read_id);
  void complete_read(const std::string& channel, Sync& s);
  void on_stream_message(const std::string& channel, Sync& s, pubsub::Publication* p);
  void forward(pubsub::Publication* p);
  void forward_gap(const std::string& channel, const std::string& epoch, uint64_t from,
                   uint64_t to, const std::string& previous_epoch);
  void post_reply(stream::Reply&& reply);
  void fail_stream_reads(const char* why);
  void report_publish(pubsub::Publication* p, bool ok, std::string_view epoch, uint64_t offset);
  void flush_results();
  pubsub::Publication* entry_publication(const std::string& channel, std::string_view epoch,
                                         uint64_t offset, std::string_view envelope);
  void drop(size_t n, uint32_t reason);
  size_t charge(const pubsub::Publication& p) const;
  void before_sleep();

  BridgeOptions opts_;
  Deliver deliver_;
  ReplyTo reply_;
  ResultsTo results_;
  ClusterMetrics metrics_;
  telemetry::Shard* shard_ = nullptr;
  net::EventLoop loop_;
  std::thread thread_;
  std::unique_ptr<Link> sub_;
  std::unique_ptr<Link> pub_;
  std::atomic<bool> link_up_{false};
  std::atomic<size_t> redis_subs_{0};
  PublishBudget budget_;  // queued + in flight

  // Bridge thread only.
  std::unordered_map<std::string, bool> desired_;  // channel -> has local subscribers
  std::set<std::string> dirty_;                    // desired changed since last reconcile
  std::set<std::string> subscribed_;               // what Redis has (or will have)
  // SUBSCRIBE/UNSUBSCRIBE sent per channel and not confirmed yet: a
  // channel counts as subscribed once the last one sent, a SUBSCRIBE, is.
  std::unordered_map<std::string, uint32_t> unconfirmed_;
  std::vector<pubsub::Publication*> outgoing_;
  std::vector<pubsub::Publication*> received_;
  std::string envelope_;
  Buffer scratch_;
  struct InFlight {
    size_t charge;                 // released when Redis answers
    pubsub::Publication* pub;      // one reference, for the publish result
  };
  std::deque<InFlight> in_flight_;  // each publish script awaiting its reply, in order
  std::unordered_map<std::string, std::unique_ptr<Sync>> syncs_;  // channels subscribed here
  std::unordered_map<std::string, const stream::ChannelRule*> rule_cache_;
  std::vector<std::vector<stream::PublishResult>> results_out_;  // per worker
  std::string publish_sha_, read_sha_;
  uint64_t next_read_ = 1;
  uint64_t drops_unlogged_[4] = {};
  bool resyncing_ = false;        // subscriber link up, (re)subscriptions not confirmed yet
  size_t resync_awaiting_ = 0;
  uint64_t ping_sent_ns_ = 0;     // health check PING in flight since (0: none)
  uint64_t last_drop_log_ns_ = 0;
  bool stopping_ = false;
  MemberEvent on_member_event_;
  // This node's members per channel with presence: connection -> user.
  std::unordered_map<std::string, std::unordered_map<uint64_t, std::string>> members_;
  net::EventLoop::TimerId presence_timer_ = 0;
  ControlHandler on_control_;
  ControlHandler on_control_reply_;
  size_t control_subs_ = 0;  // the control channels among Redis' subscription count
};

}  // namespace wstrace::cluster
