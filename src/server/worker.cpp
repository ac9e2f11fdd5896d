// The worker's own life: construction, its thread, what each loop iteration
// does after the I/O (deliver, flush, free), the timer wheel (handshake,
// heartbeat and close timeouts), shutdown and the snapshots the admin API
// asks for. The rest of Worker is split by what it handles:
//   session.cpp   accept, read, the HTTP upgrade, frames, close handshake
//   commands.cpp  the client commands (Ping, Subscribe, Unsubscribe, Message)
//   output.cpp    replies, the per-connection queue, flush, backpressure
//   fanout.cpp    publications: posting across threads, delivery runs
#include "server/worker.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>

#include "server/tracing.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/thread_name.h"

namespace wstrace::server {
namespace {

constexpr size_t kReadBufSize = 256 * 1024;

thread_local Worker* t_worker = nullptr;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
Connection& from_timer(net::WheelNode* node) {
  return *reinterpret_cast<Connection*>(reinterpret_cast<char*>(node) -
                                        offsetof(Connection, timer));
}
#pragma GCC diagnostic pop

uint64_t ticks_for(uint64_t ns, uint64_t tick_ns) {
  return ns == 0 ? 0 : std::max<uint64_t>(1, (ns + tick_ns - 1) / tick_ns);
}

uint64_t choose_tick(const Config& c) {
  uint64_t smallest = UINT64_MAX;
  for (uint64_t v : {c.heartbeat_interval_ns, c.client_timeout_ns, c.handshake_timeout_ns,
                     c.close_timeout_ns}) {
    if (v > 0) smallest = std::min(smallest, v);
  }
  uint64_t tick = smallest == UINT64_MAX ? 500'000'000ull : smallest / 4;
  return std::clamp<uint64_t>(tick, 1'000'000ull, 500'000'000ull);
}

}  // namespace

Worker::Worker(Node& node, unsigned index, int listen_fd)
    : node_(node),
      cfg_(node.cfg),
      index_(index),
      shard_(node.registry().shard(index + 1)),
      tracer_(&node.telemetry->tracer()),
      wheel_(mono_ns(), choose_tick(node.cfg), 4096),
      streams_(0),
      parser_(node.cfg.max_message_size) {
  const uint64_t tick = wheel_.tick_ns();
  hb_ticks_ = static_cast<uint32_t>(ticks_for(cfg_.heartbeat_interval_ns, tick));
  timeout_ticks_ = static_cast<uint32_t>(ticks_for(cfg_.client_timeout_ns, tick));
  shared_inflater_ = std::make_unique<ws::Inflater>(15);
  read_buf_.reserve(kReadBufSize);
  registry_.on_interest = [this](const std::string& channel, bool active) {
    node_.directory.update(channel, active);
  };
  if (listen_fd >= 0) {
    listener_ = std::make_unique<net::Listener>(
        loop_, listen_fd,
        net::Listener::Callbacks{
            [this](int fd, const net::Address& peer) { on_accepted(fd, peer); },
            [this](int) {
              node_.metrics.connections.add(shard_, 1, static_cast<uint32_t>(ConnOutcome::FdLimit));
              WS_LOG(Warn, "rejected a client: out of file descriptors", {"worker", index_});
            }},
        !cfg_.reuse_port);
  }
  loop_.add_before_sleep([this] { before_sleep(); });
  loop_.add_timer(tick, tick, [this] { on_tick(); });
  loop_.add_timer(10'000'000'000ull, 10'000'000'000ull, [this] {
    sweep_streams();
    if (index_ == 0 && node_.ip_limits) node_.ip_limits->sweep(loop_.now());
  });
}

Worker::~Worker() {
  loop_.drain();  // publications posted after the loop stopped
  listener_.reset();
  pool_.for_each([this](Connection* c) {
    if (c->state != ConnState::Dead) ::close(c->fd);
    pool_.destroy(c);
  });
  // Whatever the stopped loop left on its way: publications handed over for
  // sequencing (drained above into to_sequence_) or not yet passed on.
  for (auto* list : {&incoming_, &published_, &to_sequence_, &sequenced_, &delivering_}) {
    for (auto* p : *list) p->unref();
  }
  for (auto& batch : outbox_) {
    for (auto* p : batch) p->unref();
  }
  if (ping_frame_) ping_frame_->unref();
}

void Worker::start() {
  // Every worker exists now: size what is kept per worker, and take the rules.
  const size_t n = node_.workers.size();
  outbox_.resize(n);
  results_out_.resize(n);
  streams_.set_memory_budget(cfg_.history_memory / std::max<size_t>(1, n));
  rules_ = node_.rules;
  streams_.set_rules(rules_);
  last_turn_ns_.store(mono_ns(), std::memory_order_relaxed);
  thread_ = std::thread([this] {
    name_this_thread("ws-worker-" + std::to_string(index_));
    t_worker = this;
    set_thread_shard(&shard_);
    loop_.run();
    t_worker = nullptr;
  });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

Worker* Worker::current() { return t_worker; }

// ---------------------------------------------------------------------------
// Connection storage

Connection* Worker::alloc_connection(int fd) { return pool_.create(fd); }

void Worker::free_connection(Connection* c) {
  if (member_rule_possible()) {
    c->for_each_subscription([&](const std::string& ch) { presence_changed(*c, ch, false); });
  }
  registry_.unsubscribe_all(*c);
  pool_.destroy(c);
}

std::vector<Connection*> Worker::connections() const {
  std::vector<Connection*> all;
  all.reserve(pool_.size());
  pool_.for_each([&](Connection* c) { all.push_back(c); });
  return all;
}

// ---------------------------------------------------------------------------
// Loop iteration and timers

void Worker::before_sleep() {
  last_turn_ns_.store(loop_.now(), std::memory_order_relaxed);
  if (!read_list_.empty()) {
    std::vector<Connection*> list;
    list.swap(read_list_);
    for (Connection* c : list) {
      c->in_read_list = false;
      if (c->state != ConnState::Dead) read(*c);
    }
  }

  if (!published_.empty()) {
    if (node_.clustered()) {
      // Redis sequences them; they come back through the bridge, to this
      // node's subscribers too.
      node_.on_local_publish(published_);
      for (auto* p : published_) p->unref();
    } else {
      // Each to its channel's owner: this thread's own now, the others'
      // batched, one task per owner.
      for (auto* p : published_) {
        const unsigned owner = owner_of(p->channel(), node_.workers.size());
        (owner == index_ ? to_sequence_ : outbox_[owner]).push_back(p);
      }
      for (size_t w = 0; w < outbox_.size(); ++w) {
        if (outbox_[w].empty()) continue;
        node_.workers[w]->post_for_sequencing(std::move(outbox_[w]));
        outbox_[w] = {};
      }
    }
    published_.clear();
  }
  if (!to_sequence_.empty()) sequence(to_sequence_);
  if (!sequenced_.empty()) {
    // Sealed here: to every other thread (they deliver while we do), then ours.
    for (auto* p : sequenced_) p->expect_deliveries(static_cast<uint32_t>(node_.workers.size()));
    for (Worker* w : node_.workers) {
      if (w == this) continue;
      for (auto* p : sequenced_) p->ref();
      w->post_publications(sequenced_);
    }
    incoming_.insert(incoming_.end(), sequenced_.begin(), sequenced_.end());
    sequenced_.clear();
  }
  finish_publish_results();
  deliver_incoming();

  for (size_t i = 0; i < flush_list_.size(); ++i) {
    Connection* c = flush_list_[i];
    c->in_flush_list = false;
    if (c->state != ConnState::Dead && !c->blocked) flush(*c);
  }
  flush_list_.clear();

  for (Connection* c : graveyard_) free_connection(c);
  graveyard_.clear();

  if (shutting_down_ && pool_.size() == 0 && stop_when_empty_) loop_.stop();
}

void Worker::deliver_incoming() {
  if (incoming_.empty()) return;
  delivering_.swap(incoming_);
  deliver(delivering_);
  for (auto* p : delivering_) {
    p->delivered_here();
    p->unref();
  }
  delivering_.clear();
}

void Worker::on_tick() {
  wheel_.advance(loop_.now(), [this](net::WheelNode* n) { on_timer(from_timer(n)); });
}

void Worker::on_timer(Connection& c) {
  switch (c.state) {
    case ConnState::Handshake:
      reject(c, static_cast<int>(ws::Rejection::Timeout), "handshake not completed in time");
      return;
    case ConnState::Closing:
    case ConnState::Draining:
      finalize(c);  // the close handshake did not finish in time
      return;
    case ConnState::Dead:
      return;
    case ConnState::Open:
      break;
  }
  if (check_token(c)) return;
  const uint32_t now = wheel_.current();
  // last_activity is a whole tick, up to one tick before the real time of the
  // frame: only more than timeout_ticks since it means at least the timeout.
  if (timeout_ticks_ > 0 &&
      static_cast<int32_t>(now - c.last_activity) > static_cast<int32_t>(timeout_ticks_)) {
    node_.metrics.heartbeat_timeouts.add(shard_, 1);
    auto scope = conn_log_scope(c);
    WS_LOG(Debug, "heartbeat timeout", {"id", c.id}, {"peer", c.peer.to_string()});
    trace_event(*this, c, "websocket.heartbeat_timeout",
                {{"websocket.silent_ms", static_cast<double>(now - c.last_activity) *
                                             static_cast<double>(wheel_.tick_ns()) / 1e6}});
    // The client is silent, likely gone: do not wait for its Close.
    close(c, ws::close_code::kHeartbeatTimeout, "heartbeat timeout", Initiator::Timeout, false);
    return;
  }
  if (hb_ticks_ > 0 && static_cast<int32_t>(now - c.last_ping) >= static_cast<int32_t>(hb_ticks_)) {
    if (ping_frame_ == nullptr || ping_frame_tick_ != now) {
      if (ping_frame_) ping_frame_->unref();
      uint8_t payload[8];
      uint64_t t = mono_ns();
      for (int i = 7; i >= 0; --i) {
        payload[i] = static_cast<uint8_t>(t);
        t >>= 8;
      }
      ping_frame_ = pubsub::Frame::make(ws::Opcode::Ping, payload, sizeof payload);
      ping_frame_tick_ = now;
    }
    ping_frame_->ref();
    send_control(c, ping_frame_);
    c.last_ping = now;
  }
  // An idle connection gives its buffers back.
  if (c.out.empty()) c.out.shrink();
  if (c.ssl != nullptr && c.out.empty() && !c.blocked) net::tls_release_buffers(c.ssl);
  if (!c.has_input()) c.release_input();
  schedule_heartbeat(c);
}

void Worker::schedule_heartbeat(Connection& c) {
  if (c.state != ConnState::Open) return;
  bool any = false;
  uint32_t due = 0;
  auto consider = [&](uint32_t t) {
    if (!any || static_cast<int32_t>(t - due) < 0) due = t;
    any = true;
  };
  if (hb_ticks_ > 0) consider(c.last_ping + hb_ticks_);
  if (timeout_ticks_ > 0) consider(c.last_activity + timeout_ticks_ + 1);
  if (const uint32_t t = token_due_tick(c)) consider(t);
  if (!any) {
    net::TimerWheel::cancel(&c.timer);
    return;
  }
  wheel_.schedule(&c.timer, due);
}

// ---------------------------------------------------------------------------
// Shutdown and introspection

void Worker::begin_shutdown() {
  loop_.post([this] {
    shutting_down_ = true;
    stop_when_empty_ = true;
    if (listener_) listener_->close();
    std::vector<Connection*> all = connections();
    for (Connection* c : all) {
      if (c->state == ConnState::Handshake) {
        finalize(*c);
      } else if (c->state == ConnState::Open) {
        close(*c, ws::close_code::kGoingAway, "server shutting down", Initiator::Shutdown, true);
      }
    }
  });
}

void Worker::stop() {
  loop_.post([this] {
    shutting_down_ = true;
    if (listener_) listener_->close();
    std::vector<Connection*> all = connections();
    for (Connection* c : all) {
      if (c->state != ConnState::Dead) {
        if (c->close_code() == 0) c->set_close(ws::close_code::kGoingAway, Initiator::Shutdown);
        finalize(*c);
      }
    }
    // The graveyard is freed by before_sleep, which still runs after this
    // task (this iteration's flush list may point at these connections).
    loop_.stop();
  });
}

void Worker::collect_connections(std::vector<ConnInfo>& out, const ConnFilter& filter) const {
  static constexpr const char* kStates[] = {"handshake", "open", "closing", "draining", "dead"};
  pool_.for_each([&](const Connection* c) {
    if (c->state == ConnState::Dead) return;
    if (filter.id != 0 && c->id != filter.id) return;
    if (!filter.user.empty() && (c->extra == nullptr || c->extra->user_id != filter.user)) return;
    if (!filter.channel.empty() &&
        registry_.membership(*c, filter.channel) == nullptr) {
      return;
    }
    ConnInfo info;
    info.id = c->id;
    info.peer = c->peer.to_string();
    if (!filter.peer.empty() && info.peer.find(filter.peer) == std::string::npos) return;
    info.trace_id = c->span.trace_id.hex();
    info.span_id = c->span.span_id.hex();
    info.sampled = c->span_sampled();
    if (filter.events && c->extra) info.events = c->extra->events;
    info.state = kStates[static_cast<int>(c->state)];
    if (c->extra) info.user_id = c->extra->user_id;
    info.opened_unix_ns = c->span.start_unix_ns;
    info.subscriptions = c->subscription_count();
    info.rtt_ms = c->rtt_ms();
    info.queued_bytes = c->out.bytes();
    int unsent = 0;
    info.kernel_queued_bytes =
        ::ioctl(c->fd, SIOCOUTQ, &unsent) == 0 && unsent > 0 ? static_cast<uint64_t>(unsent) : 0;
    info.stats = c->stats;
    info.deflate = c->deflate;
    info.thread = index_;
    info.write_calls = c->write_calls;
    out.push_back(std::move(info));
  });
}

void Worker::channel_sample(ChannelMetrics::Sample& out) const {
  for (const auto& [name, n] : channel_published_) out.published[name] += n;
  registry_.for_each_channel(
      [&](const pubsub::Channel& ch) { out.subscribers[ch.name()] += ch.size(); });
}

void Worker::collect_channels(std::vector<std::pair<std::string, size_t>>& out) const {
  registry_.for_each_channel([&](const pubsub::Channel& ch) { out.emplace_back(ch.name(), ch.size()); });
}

}  // namespace wstrace::server
