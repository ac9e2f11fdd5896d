// One event-loop thread and the connections it owns. Workers share nothing
// mutable on the hot path: each has its own channel registry, buffers,
// compressors and metrics shard; publications cross threads as reference-
// counted, immutable objects posted once per loop iteration in a batch.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "net/event_loop.h"
#include "net/listener.h"
#include "net/timer_wheel.h"
#include "http/request.h"
#include "protocol/protocol.h"
#include "pubsub/publication.h"
#include "pubsub/registry.h"
#include "server/channel_metrics.h"
#include "server/auth.h"
#include "server/connection.h"
#include "server/node.h"
#include "stream/requests.h"
#include "stream/rules.h"
#include "stream/stream_table.h"
#include "util/log.h"
#include "util/slab_pool.h"

namespace wstrace::server {

struct UpgradeInfo;

class Worker {
 public:
  Worker(Node& node, unsigned index, int listen_fd);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  void join();

  unsigned index() const { return index_; }
  // The worker running on this thread, or null.
  static Worker* current();
  Node& node() { return node_; }
  telemetry::Shard& shard() { return shard_; }
  telemetry::Tracer& tracer() { return *tracer_; }
  net::EventLoop& loop() { return loop_; }

  // From any thread: sealed publications to deliver (from a channel's owner
  // worker or from the cluster). Takes over one reference of each.
  void post_publications(std::vector<pubsub::Publication*> batch);
  // From any thread: unsealed publications of channels this worker owns, to
  // sequence (in-process mode). Takes over one reference of each.
  void post_for_sequencing(std::vector<pubsub::Publication*> batch);
  // From any thread: a request to this worker as a channel's owner, and the
  // replies and publish results for this worker's connections.
  void post_stream_request(stream::Request request);
  void post_stream_reply(stream::Reply reply);
  void post_publish_results(std::vector<stream::PublishResult> results);
  // New channel rules (SIGHUP), on this worker's thread: Server::gather runs
  // it there, so the reload is logged only once every worker has them.
  void apply_rules(std::shared_ptr<const stream::Rules> rules);
  // From any thread: stop accepting, Close 1001 to every client.
  void begin_shutdown();
  // From any thread: drop whatever is left and end the loop.
  void stop();
  // Number of sockets this worker holds (read from any thread, approximate).
  size_t socket_count() const { return sockets_.load(std::memory_order_relaxed); }
  // Monotonic time of the event loop's last turn (any thread): /healthz.
  uint64_t last_turn_ns() const { return last_turn_ns_.load(std::memory_order_relaxed); }

  // --- used by Connection (same thread only) ---
  void on_io(Connection& c, uint32_t events);

  // A snapshot row for /api/connections.
  struct ConnInfo {
    uint64_t id;
    std::string peer;
    std::string state;
    std::string user_id;
    uint64_t opened_unix_ns;
    uint32_t subscriptions;
    double rtt_ms;
    uint64_t queued_bytes;
    uint64_t kernel_queued_bytes;  // unsent bytes in the socket's send buffer (SIOCOUTQ)
    ConnStats stats;
    bool deflate;
    unsigned thread;       // the worker's index
    uint32_t write_calls;  // send/sendmsg calls made for the connection
    std::string trace_id, span_id;  // of the connection span (hex)
    bool sampled = false;           // the connection span will be exported
    std::vector<telemetry::Event> events;  // its events so far (ConnFilter::events only)
  };
  // /api/connections filters: a user, a channel the connection is
  // subscribed to, a part of the peer address, one id (empty / 0: any).
  struct ConnFilter {
    std::string user;
    std::string channel;
    std::string peer;
    uint64_t id = 0;
    bool events = false;  // copy the span events
  };
  // Runs on the worker thread (post it there).
  void collect_connections(std::vector<ConnInfo>& out, const ConnFilter& filter) const;
  void collect_channels(std::vector<std::pair<std::string, size_t>>& out) const;
  // Adds this worker's per-channel counts (with --channel-metrics).
  void channel_sample(ChannelMetrics::Sample& out) const;
  // The streams this worker owns (in-process mode): for /api/channels and stats.
  struct StreamInfo {
    std::string channel;
    std::string epoch;
    uint64_t offset;
    size_t history_entries;
    size_t history_bytes;
  };
  void collect_streams(std::vector<StreamInfo>& out) const;
  struct HistoryTotals {
    size_t bytes = 0, entries = 0, streams = 0;
    uint64_t evicted_for_memory = 0;
  };
  HistoryTotals history_totals() const;  // any thread (as of the last sweep)
  // The worker that sequences `channel` in-process.
  static unsigned owner_of(std::string_view channel, size_t workers);

  // --- presence and Join/Leave (presence.cpp) ---
  // On the channel's owner: a member came or went.
  void apply_presence(const PresenceChange& p);
  // On any worker: the Join/Leave frame to this worker's subscribers of
  // `channel` but the connection it is about (takes over one reference of `f`).
  void deliver_event(std::string_view channel, pubsub::Frame* f, OutType type, uint64_t subject);

  // --- the server API (api_worker.cpp), on this worker's thread ---
  // The connection id of a server API request: this bit and the request's
  // token (client connection ids never reach it).
  static constexpr uint64_t kApiConnection = uint64_t{1} << 63;
  static bool is_api(uint64_t connection_id) { return (connection_id & kApiConnection) != 0; }
  // A backend's publication; its result goes to Node::api_published.
  void api_publish(std::string_view channel, std::string_view content, const TraceContext& parent,
                   uint64_t token);
  // History for the API (r.connection_id = kApiConnection | token); the
  // reply goes to Node::api_reply.
  void api_stream_request(stream::Request r);
  // Close 'code' to this worker's open connections of `user` (or the one
  // with `connection_id`); how many.
  uint32_t api_disconnect(std::string_view user, uint64_t connection_id, uint16_t code,
                          std::string_view reason);
  // Subscribes (or unsubscribes) this worker's connections of `user`; how many.
  uint32_t api_subscribe(std::string_view user, std::string_view channel, bool subscribe);

 private:
  friend struct FrameHandler;

  // Accept and input. on_accepted picks the worker that takes a new
  // connection (counted in its sockets_ at once); accept runs on that one.
  void on_accepted(int fd, const net::Address& peer);
  void accept(int fd, const net::Address& peer);
  void read(Connection& c);
  void process(Connection& c, uint8_t* data, size_t len, bool from_conn_buffer);
  size_t process_handshake(Connection& c, uint8_t* data, size_t len);
  void upgrade(Connection& c, const UpgradeInfo& info);
  void reject(Connection& c, int rejection, std::string_view reason,
              const http::Request* req = nullptr);
  void on_text(Connection& c, uint8_t* data, size_t len);
  // A binary frame on /ws: an unsupported_frame Error reply, traced as one
  // websocket.message.handle span (type "binary") like any inbound message.
  void on_binary(Connection& c, size_t len);
  // True when the message was refused with an Error (its code in `error`).
  bool handle_message(Connection& c, const protocol::ClientMessage& m, protocol::ErrorCode& error);
  void on_echo(Connection& c, ws::Opcode op, const uint8_t* data, size_t len);

  // Permissions (permissions.cpp): whether `c` may subscribe to (read the
  // history of) or publish on `channel`; else the Error code and why.
  bool allowed(Connection& c, std::string_view channel, bool publish, protocol::ErrorCode& code,
               std::string_view& why);
  bool auth_required() const { return node_.auth_configured; }

  // Tokens (tokens.cpp): a verified token's user and claims on the
  // connection; the client's Refresh; asking for one before exp, 4401 after.
  void apply_token(Connection& c, AuthResult&& a);
  bool refresh(Connection& c, const protocol::ClientMessage& m, protocol::ErrorCode& error);
  // Whether the connection's token ran out (it is then being closed).
  bool check_token(Connection& c);
  // The wheel tick when the token needs attention next (0: none).
  uint32_t token_due_tick(const Connection& c) const;

  // Subscriptions (subscriptions.cpp).
  bool subscribe(Connection& c, const protocol::ClientMessage& m, protocol::ErrorCode& error);
  bool unsubscribe(Connection& c, const protocol::ClientMessage& m, protocol::ErrorCode& error);
  bool presence(Connection& c, const protocol::ClientMessage& m, protocol::ErrorCode& error);
  void presence_done(Connection& c, const stream::Reply& reply);
  // The rule of `channel` when it has presence or join_leave, else null
  // (null at once while no rule has either).
  const stream::ChannelRule* member_rule(std::string_view channel) const;
  bool member_rule_possible() const { return rules_ && rules_->any_presence(); }
  // One of this worker's connections joined or left `channel`: tells the owner.
  void presence_changed(const Connection& c, std::string_view channel, bool joined);
  // On the owner: the Presence reply's members (count, users, clients).
  void serve_presence(const stream::Request& request, stream::Reply& reply);
  void subscribe_done(Connection& c, stream::Reply& reply);
  // History (history.cpp).
  bool history(Connection& c, const protocol::ClientMessage& m, protocol::ErrorCode& error);
  void history_done(Connection& c, stream::Reply& reply);

  // Streams (streams.cpp): asking a channel's sequencer, and being one.
  stream::Request make_request(Connection& c, const protocol::ClientMessage& m,
                               stream::Request::Kind kind) const;
  void request_stream(Connection& c, stream::Request request);
  void serve_stream_request(stream::Request& request, stream::Reply& reply);
  void complete_stream_request(stream::Reply& reply);
  void sequence(std::vector<pubsub::Publication*>& pubs);
  void finish_publish_results();
  void on_publish_results(std::vector<stream::PublishResult>& results);
  void sweep_streams();
  void deliver_incoming();  // delivers incoming_ now (before a reply that follows it)
  // Connections waiting for an answer from elsewhere (a stream reply, a
  // publish result), found again by id when it comes.
  void track(Connection& c);
  void untrack(Connection& c);
  Connection* tracked(uint64_t connection_id) const;
  // Sends a sealed publication's frame to one connection outside a fan-out
  // run (recovered messages, gaps to a member).
  void send_publication(Connection& c, pubsub::Publication* p);
  void on_pong(Connection& c, const uint8_t* data, size_t len);
  void on_close_frame(Connection& c, uint16_t code, std::string_view reason);
  void on_protocol_error(Connection& c, ws::Error e);
  void on_eof(Connection& c);
  void socket_error(Connection& c, int err);

  // Output.
  void send_frame(Connection& c, pubsub::Frame* f, OutType type);  // takes a reference
  void send_control(Connection& c, pubsub::Frame* f);              // Ping/Pong; takes a reference
  void send_reply(Connection& c, OutType type);  // sends reply_ as a text frame
  void send_error(Connection& c, protocol::ErrorCode code, std::string_view message,
                  const protocol::Id& id);
  void enqueue(Connection& c, pubsub::Frame* f);  // queue + stats (after admit)
  void push_close(Connection& c, pubsub::Frame* f);
  // Log lines about a connection carry its span's ids (unless a message span
  // is current: then theirs).
  static log::ScopedLogSpan conn_log_scope(const Connection& c);
  // Flushed at the end of this loop iteration (corking), unless the socket
  // is full: then EPOLLOUT resumes it.
  void schedule_flush(Connection& c) {
    if (!c.blocked && !c.in_flush_list) {
      c.in_flush_list = true;
      flush_list_.push_back(&c);
    }
  }
  void flush(Connection& c);
  // One write: send(2), or through TLS (counted in write_calls).
  ssize_t write_some(Connection& c, const uint8_t* data, size_t len);
  ssize_t writev_some(Connection& c, iovec* iov, int n);
  // Drives the TLS handshake; true once done (false: wait, or it failed and
  // the connection is finalized).
  bool tls_handshake(Connection& c);
  // False (and the connection closed with 4429) when what `c` already has
  // queued is over --max-backpressure; `messages` are those refused with it.
  bool admit(Connection& c, uint32_t messages);
  void slow_consumer(Connection& c, uint32_t refused);

  // Closing.
  void close(Connection& c, uint16_t code, std::string_view reason, Initiator who,
             bool wait_for_client);
  void finalize(Connection& c);

  // Publications.
  void publish(Connection& c, const protocol::ClientMessage& m);
  void deliver(std::vector<pubsub::Publication*>& pubs);
  void deliver_run(pubsub::Channel& ch, pubsub::Publication* const* pubs, size_t k);
  void deliver_gap(pubsub::Channel& ch, pubsub::Publication* gap);

  // Per-iteration work.
  void before_sleep();
  void on_tick();
  void on_timer(Connection& c);
  void schedule_heartbeat(Connection& c);

  Connection* alloc_connection(int fd);
  void free_connection(Connection* c);

  Node& node_;
  const Config& cfg_;
  unsigned index_;
  telemetry::Shard& shard_;
  telemetry::Tracer* tracer_;
  telemetry::SpanStart handle_;  // span of the message being handled (on_text)
  net::EventLoop loop_;
  std::unique_ptr<net::Listener> listener_;
  net::TimerWheel wheel_;
  uint32_t hb_ticks_ = 0;        // heartbeat interval in ticks (0: off)
  uint32_t timeout_ticks_ = 0;   // client timeout in ticks (0: off)
  pubsub::Registry registry_;
  std::shared_ptr<const stream::Rules> rules_;
  stream::StreamTable streams_;  // the channels this worker owns (in-process mode)
  // Presence of the channels this worker owns: channel -> connection id -> user.
  std::unordered_map<std::string, std::unordered_map<uint64_t, std::string>> presence_;
  Buffer seal_buf_;
  protocol::Parser parser_;
  pubsub::DeflaterSet deflaters_;
  std::unique_ptr<ws::Inflater> shared_inflater_;  // for clients without context takeover
  std::thread thread_;
  std::atomic<size_t> sockets_{0};
  std::atomic<uint64_t> last_turn_ns_{0};
  std::atomic<size_t> history_bytes_{0};
  std::atomic<size_t> history_entries_{0};
  std::atomic<size_t> history_streams_{0};
  std::atomic<uint64_t> history_evicted_{0};
  bool shutting_down_ = false;
  bool stop_when_empty_ = false;

  // Buffers shared by all connections of this thread.
  Buffer read_buf_;
  Buffer inflate_buf_;
  Buffer reply_;
  pubsub::Frame* ping_frame_ = nullptr;  // this tick's Ping, shared by all pinged
  uint32_t ping_frame_tick_ = 0;

  std::vector<Connection*> flush_list_;
  std::vector<Connection*> read_list_;
  std::vector<Connection*> graveyard_;
  std::vector<pubsub::Publication*> published_;  // by this thread's clients, this iteration
  std::vector<pubsub::Publication*> incoming_;   // sealed, from owners and the cluster
  std::vector<pubsub::Publication*> to_sequence_;  // unsealed, for channels this worker owns
  std::vector<pubsub::Publication*> sequenced_;    // sealed here this iteration
  std::vector<std::vector<pubsub::Publication*>> outbox_;  // unsealed, per owner worker
  std::vector<std::vector<stream::PublishResult>> results_out_;  // per publishing worker
  std::unordered_map<uint64_t, Connection*> tracked_;
  uint32_t request_tag_ = 0;  // names pending memberships (0: none)
  std::vector<pubsub::Publication*> delivering_;
  std::vector<pubsub::Publication*> run_pubs_;
  std::vector<pubsub::Frame*> frames_;
  // Small queued frames gathered into one TLS record (allocated at the first
  // use; one per worker: OpenSSL copies what it encrypts).
  std::unique_ptr<uint8_t[]> tls_record_;
  std::vector<std::pair<pubsub::Channel*, pubsub::Publication*>> runs_;
  // --channel-metrics: publications per channel made on this thread.
  std::unordered_map<std::string, uint64_t> channel_published_;

  // Connection storage: pooled slots, iterable for listing and shutdown.
  SlabPool<Connection> pool_;
  std::vector<Connection*> connections() const;
};

}  // namespace wstrace::server
