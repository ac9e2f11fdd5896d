#include "cluster/bridge.h"

#include "cluster/bridge_link.h"
#include "cluster/stream_sync.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <sys/epoll.h>

#include <random>

#include <simdjson.h>

#include "cluster/envelope.h"
#include "protocol/protocol.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/thread_name.h"

namespace wstrace::cluster {
namespace {


constexpr uint64_t kDropLogInterval = 5'000'000'000ull;
constexpr uint64_t kHealthInterval = 1'000'000'000ull;

}  // namespace

Bridge::Bridge(BridgeOptions options, telemetry::MetricRegistry& registry, Deliver deliver,
               ReplyTo reply, ResultsTo results)
    : opts_(std::move(options)),
      deliver_(std::move(deliver)),
      reply_(std::move(reply)),
      results_(std::move(results)),
      budget_(opts_.max_pending, opts_.max_pending_bytes) {
  metrics_.register_all(registry);
  registry.add_observable_gauge("websocket.pubsub.link.up",
                                "1 while the node is connected to the cluster through Redis",
                                "{link}", [this](std::vector<telemetry::Point>& out) {
                                  out.push_back(telemetry::Point::of_int(link_up() ? 1 : 0));
                                });
  registry.add_observable_gauge("websocket.pubsub.subscriptions",
                                "Channels this node is subscribed to in Redis", "{channel}",
                                [this](std::vector<telemetry::Point>& out) {
                                  out.push_back(telemetry::Point::of_int(
                                      static_cast<int64_t>(redis_subscriptions())));
                                });
  sub_ = std::make_unique<Link>(*this, true);
  pub_ = std::make_unique<Link>(*this, false);
  loop_.add_before_sleep([this] { before_sleep(); });
  loop_.add_timer(kDropLogInterval, kDropLogInterval, [this] { log_drops(); });
  loop_.add_timer(kHealthInterval, kHealthInterval, [this] { health_check(); });
}

Bridge::~Bridge() {
  stop();
  loop_.drain();  // batches posted after the loop stopped hold references
  for (auto* p : outgoing_) p->unref();
  for (auto* p : received_) p->unref();
  for (auto& f : in_flight_) f.pub->unref();
  syncs_.clear();
}

void Bridge::start(telemetry::Shard& shard) {
  shard_ = &shard;
  thread_ = std::thread([this] {
    name_this_thread("ws-redis");
    connect(*sub_);
    connect(*pub_);
    const uint64_t every = std::max<uint64_t>(opts_.presence_ttl_ns / 3, 100'000'000ull);
    presence_timer_ = loop_.add_timer(every, every, [this] { refresh_presence(); });
    loop_.run();
  });
}

void Bridge::stop() {
  if (!thread_.joinable()) return;
  loop_.post([this] {
    stopping_ = true;
    sub_->abandon();
    pub_->abandon();
    loop_.stop();
  });
  thread_.join();
  link_up_.store(false);
}

void Bridge::set_interest(const std::string& channel, bool active) {
  loop_.post([this, channel, active] {
    desired_[channel] = active;
    dirty_.insert(channel);
  });
}

size_t Bridge::charge(const pubsub::Publication& p) const {
  // What its PUBLISH holds until Redis answers: the envelope (header and
  // content) and the channel.
  return kEnvelopeHeader + p.content().size() + opts_.prefix.size() + 2 * p.channel().size() +
         64;
}

void Bridge::publish(const std::vector<pubsub::Publication*>& batch) {
  if (batch.empty()) return;
  // Bounded in number and in bytes: what does not fit is dropped, the
  // oldest kept (the batch is in publication order).
  const size_t take = budget_.admit(batch.size(), [&](size_t i) { return charge(*batch[i]); });
  if (take < batch.size()) {
    // Counted on the bridge thread (its metrics shard is its own).
    loop_.post([this, excess = batch.size() - take] { drop(excess, kQueueFull); });
  }
  if (take == 0) return;
  std::vector<pubsub::Publication*> mine(batch.begin(), batch.begin() + static_cast<long>(take));
  for (auto* p : mine) p->ref();
  loop_.post([this, mine = std::move(mine)] {
    outgoing_.insert(outgoing_.end(), mine.begin(), mine.end());
  });
}

void Bridge::connect(Link& link) {
  if (stopping_) return;
  redisAsyncContext* ac = redisAsyncConnect(opts_.url.host.c_str(), opts_.url.port);
  if (ac == nullptr || ac->err) {
    const char* why = ac ? ac->errstr : "out of memory";
    if (ac) redisAsyncFree(ac);
    on_disconnected(link, why);
    return;
  }
  link.attach(ac);
  link.connect_started = mono_ns();
  // hiredis has no connect timeout in its async API: give up on our own if
  // Redis has not answered (connected and authenticated) in time.
  link.timer = loop_.add_timer(opts_.connect_timeout_ns, 0, [this, &link] {
    link.timer = 0;
    if (!link.ready && link.ctx() != nullptr) {
      link.abandon();
      on_disconnected(link, link.connected ? "Redis did not answer" : "connect timeout");
    }
  });
}

void Bridge::on_connected(Link& link) {
  link.connected = true;
  // The link counts as up only once Redis answered: the credentials when
  // there are some, else a PING.
  if (opts_.url.password.empty()) {
    auto on_pong = [](redisAsyncContext* ac, void* r, void* priv) {
      auto* link = static_cast<Link*>(ac->data);
      if (link == nullptr || r == nullptr) return;  // connection already gone
      static_cast<Bridge*>(priv)->on_ready(*link);
    };
    redisAsyncCommand(link.ctx(), on_pong, this, "PING");
    return;
  }
  auto on_auth = [](redisAsyncContext* ac, void* r, void* priv) {
    auto* self = static_cast<Bridge*>(priv);
    auto* reply = static_cast<redisReply*>(r);
    auto* link = static_cast<Link*>(ac->data);
    if (link == nullptr || reply == nullptr) return;  // connection already gone
    if (reply->type == REDIS_REPLY_ERROR) {
      // A configuration error: said at every (backed-off) attempt, as an error.
      std::string error(reply->str, reply->len);
      WS_LOG(Error, "cluster link down: Redis refused the credentials in --redis, retrying",
             {"connection", link->name()}, {"error", error});
      link->last_error = error;
      link->auth_failed = true;
      redisAsyncDisconnect(ac);
      return;
    }
    self->on_ready(*link);
  };
  if (opts_.url.user.empty()) {
    redisAsyncCommand(link.ctx(), on_auth, this, "AUTH %b", opts_.url.password.data(),
                      opts_.url.password.size());
  } else {
    redisAsyncCommand(link.ctx(), on_auth, this, "AUTH %b %b", opts_.url.user.data(),
                      opts_.url.user.size(), opts_.url.password.data(), opts_.url.password.size());
  }
}

void Bridge::on_ready(Link& link) {
  link.ready = true;
  if (link.timer) {
    loop_.cancel_timer(link.timer);
    link.timer = 0;
  }
  link.backoff_ns = 0;  // reset only once the link really works
  link.last_error.clear();
  // The first connection of each link is a connect, not a reconnect.
  if (link.was_ready) metrics_.reconnects.add(*shard_);
  link.was_ready = true;
  if (link.subscriber()) {
    // Everything we want, again: Redis forgot our subscriptions with the old
    // connection. The link is not up until Redis confirmed all of them, so
    // "up" means messages from other nodes can arrive.
    subscribed_.clear();
    unconfirmed_.clear();
    for (const auto& [channel, active] : desired_) {
      if (active) dirty_.insert(channel);
    }
    resyncing_ = true;
    resync_awaiting_ = 0;
    subscribe_control();  // before the channels: their confirmations count it
  } else {
    ping_sent_ns_ = 0;
    load_scripts();  // before any publication on this connection
    refresh_presence();  // Redis may have lost them (a restart) or expired them
  }
  update_link_state();
}

void Bridge::on_disconnected(Link& link, const char* why) {
  const bool was_up = link_up();
  const bool was_ready = link.ready;
  link.connected = false;
  link.ready = false;
  if (link.timer) {
    loop_.cancel_timer(link.timer);
    link.timer = 0;
  }
  if (link.subscriber()) {
    subscribed_.clear();
    unconfirmed_.clear();
    redis_subs_.store(0);
    resyncing_ = false;
    fail_stream_reads("the subscriber connection to Redis was lost");
  } else if (!in_flight_.empty()) {
    // Replies that will never come (hiredis normally reports them first).
    size_t bytes = 0;
    for (const auto& f : in_flight_) {
      bytes += f.charge;
      report_publish(f.pub, false, {}, 0);
      f.pub->unref();
    }
    drop(in_flight_.size(), kLinkDown);
    budget_.release(in_flight_.size(), bytes);
    in_flight_.clear();
  }
  if (!link.subscriber()) fail_stream_reads("the publisher connection to Redis was lost");
  update_link_state();
  if (stopping_) return;
  // Log a failure once, not at every retry: when the link was working, or
  // when the reason changes (a refused password was logged already).
  std::string error = why ? why : "unknown";
  if (!link.auth_failed && (was_up || was_ready || error != link.last_error)) {
    WS_LOG(Warn, "cluster link down: serving local clients only, reconnecting",
           {"connection", link.name()}, {"redis", opts_.url.host + ":" + std::to_string(opts_.url.port)},
           {"error", error});
    link.last_error = error;
  }
  link.auth_failed = false;
  schedule_reconnect(link);
}

void Bridge::health_check() {
  // A Redis that stops answering (hung, or a partition without resets) keeps
  // its TCP connections open: ping it, and give up on it when it is silent.
  if (stopping_ || !pub_->ready || pub_->ctx() == nullptr) return;
  const uint64_t now = mono_ns();
  if (ping_sent_ns_ != 0) {
    if (now - ping_sent_ns_ < opts_.health_timeout_ns) return;
    ping_sent_ns_ = 0;
    for (Link* link : {sub_.get(), pub_.get()}) {
      if (link->ctx() != nullptr) link->abandon();
      on_disconnected(*link, "Redis stopped answering (no PING reply)");
    }
    return;
  }
  ping_sent_ns_ = now;
  auto on_pong = [](redisAsyncContext*, void* r, void* priv) {
    if (r != nullptr) static_cast<Bridge*>(priv)->ping_sent_ns_ = 0;
  };
  redisAsyncCommand(pub_->ctx(), on_pong, this, "PING");
}

void Bridge::schedule_reconnect(Link& link) {
  if (stopping_) return;
  link.backoff_ns = link.backoff_ns == 0 ? opts_.backoff_min_ns
                                         : std::min(link.backoff_ns * 2, opts_.backoff_max_ns);
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  // Jitter: 50%..150% of the backoff, so nodes do not reconnect in lockstep.
  uint64_t delay = link.backoff_ns / 2 + rng() % (link.backoff_ns + 1);
  link.timer = loop_.add_timer(delay, 0, [this, &link] {
    link.timer = 0;
    connect(link);
  });
}

void Bridge::update_link_state() {
  const bool up = sub_->ready && pub_->ready && !resyncing_;
  if (up == link_up_.load()) return;
  link_up_.store(up);
  if (up) {
    log_drops();  // what was lost while the link was down, before saying it is back
    WS_LOG(Info, "cluster link up", {"redis", opts_.url.host + ":" + std::to_string(opts_.url.port)},
           {"channels", static_cast<uint64_t>(subscribed_.size())}, {"node_id", opts_.node_id},
           {"prefix", std::string_view(opts_.prefix).substr(0, opts_.prefix.size() - 1)});
  }
}

void Bridge::drop(size_t n, uint32_t reason) {
  if (n == 0) return;
  metrics_.dropped.add(*shard_, n, reason);
  drops_unlogged_[reason] += n;
  // The first drop after a quiet period is logged at once; the rest are
  // summed and logged by the periodic timer (or when the link comes back).
  if (mono_ns() - last_drop_log_ns_ >= kDropLogInterval) log_drops();
}

void Bridge::log_drops() {
  static constexpr const char* kReasons[] = {"link_down", "queue_full", "publish_error", "malformed"};
  for (uint32_t r = 0; r < 4; ++r) {
    if (drops_unlogged_[r] == 0) continue;
    WS_LOG(Warn,
           r == kMalformed ? "malformed publications from the cluster dropped"
                           : "publications not sent to the cluster",
           {"dropped", drops_unlogged_[r]}, {"reason", kReasons[r]});
    drops_unlogged_[r] = 0;
    last_drop_log_ns_ = mono_ns();
  }
}

void Bridge::reconcile_subscriptions() {
  if (!sub_->ready || sub_->ctx() == nullptr) return;
  if (dirty_.empty()) {
    // Nothing to resubscribe, or every SUBSCRIBE sent so far confirmed
    // already (the last confirmation ended the resync itself). Not while
    // confirmations are awaited: the resync is over only once they came.
    if (resyncing_ && resync_awaiting_ == 0) {
      resyncing_ = false;
      update_link_state();
    }
    return;
  }
  std::vector<const char*> sub_argv{"SUBSCRIBE"}, unsub_argv{"UNSUBSCRIBE"};
  std::vector<size_t> sub_len{9}, unsub_len{11};
  std::vector<std::string> names;  // keeps the prefixed names alive
  names.reserve(dirty_.size());
  for (const auto& channel : dirty_) {
    auto it = desired_.find(channel);
    bool want = it != desired_.end() && it->second;
    bool have = subscribed_.count(channel) > 0;
    if (!want) {
      if (auto sync = syncs_.find(channel); sync != syncs_.end()) {
        // Nobody here wants it any more (maybe it was wanted and given up
        // within one turn, never subscribed): the requests still get their
        // answer, a plain read of the position.
        for (auto& r : sync->second->waiting) read_history(std::move(r));
        syncs_.erase(sync);
      }
    }
    if (want == have) {
      if (!want && it != desired_.end()) desired_.erase(it);
      continue;
    }
    names.push_back(pubsub_channel(channel));
    ++unconfirmed_[channel];
    if (want) {
      if (auto sync = syncs_.find(channel); sync != syncs_.end()) sync->second->subscribed = false;
      subscribed_.insert(channel);
      sub_argv.push_back(names.back().c_str());
      sub_len.push_back(names.back().size());
    } else {
      subscribed_.erase(channel);
      desired_.erase(channel);
      unsub_argv.push_back(names.back().c_str());
      unsub_len.push_back(names.back().size());
    }
  }
  dirty_.clear();
  if (resyncing_) {
    // Every channel of every SUBSCRIBE sent since the connection was made
    // must be confirmed: batches sent while earlier ones are unanswered add
    // up (one with only UNSUBSCRIBEs adds nothing).
    resync_awaiting_ += sub_argv.size() - 1;
    if (resync_awaiting_ == 0) {
      resyncing_ = false;
      update_link_state();
    }
  }
  // One command per direction for the whole storm of this iteration.
  auto on_reply = [](redisAsyncContext*, void* r, void* priv) {
    auto* self = static_cast<Bridge*>(priv);
    auto* reply = static_cast<redisReply*>(r);
    if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    const redisReply* kind = reply->element[0];
    if (kind->type != REDIS_REPLY_STRING) return;
    std::string_view k(kind->str, kind->len);
    if (k == "message" && reply->element[1]->type == REDIS_REPLY_STRING &&
        reply->element[2]->type == REDIS_REPLY_STRING) {
      self->on_message(reply->element[1]->str, reply->element[1]->len, reply->element[2]->str,
                       reply->element[2]->len);
    } else if ((k == "subscribe" || k == "unsubscribe") &&
               reply->element[2]->type == REDIS_REPLY_INTEGER) {
      const auto n = static_cast<size_t>(reply->element[2]->integer);
      self->redis_subs_.store(n >= self->control_subs_ ? n - self->control_subs_ : 0);
      if (reply->element[1]->type == REDIS_REPLY_STRING) {
        self->on_subscription_reply(
            std::string_view(reply->element[1]->str, reply->element[1]->len), k == "subscribe");
      }
      if (k == "subscribe" && self->resyncing_ && self->resync_awaiting_ > 0 &&
          --self->resync_awaiting_ == 0) {
        self->resyncing_ = false;
        self->update_link_state();
      }
    }
  };
  if (sub_argv.size() > 1) {
    redisAsyncCommandArgv(sub_->ctx(), on_reply, this, static_cast<int>(sub_argv.size()),
                          sub_argv.data(), sub_len.data());
  }
  if (unsub_argv.size() > 1) {
    redisAsyncCommandArgv(sub_->ctx(), on_reply, this, static_cast<int>(unsub_argv.size()),
                          unsub_argv.data(), unsub_len.data());
  }
}

void Bridge::on_message(const char* channel, size_t channel_len, const char* payload, size_t len) {
  // Redis channel: <prefix>{<channel>}
  std::string_view name(channel, channel_len);
  if (name.substr(0, opts_.prefix.size()) != opts_.prefix) return;
  name.remove_prefix(opts_.prefix.size());
  if (name.size() < 3 || name.front() != '{' || name.back() != '}') return;
  name = name.substr(1, name.size() - 2);
  auto msg = decode_pubsub(std::string_view(payload, len));
  if (!msg || !protocol::valid_channel(name)) {
    drop(1, kMalformed);
    return;
  }
  if (msg->kind == PubsubMessage::Kind::Join || msg->kind == PubsubMessage::Kind::Leave) {
    on_member_event(name, *msg);
    return;
  }
  if (msg->kind == PubsubMessage::Kind::Marker) {
    if (msg->node == opts_.node_hash) on_marker(name, msg->read);
    return;
  }
  auto env = decode_envelope(msg->envelope);
  // Anyone who can write to Redis can publish here: check what becomes a
  // text frame for every subscriber (valid channel name, UTF-8 content).
  if (!env || !simdjson::validate_utf8(env->content.data(), env->content.size())) {
    drop(1, kMalformed);
    return;
  }
  auto it = syncs_.find(std::string(name));
  if (it == syncs_.end()) return;  // no longer subscribed here
  const uint64_t now = unix_ns();
  if (env->origin_node != opts_.node_hash && now > env->published_unix_ns) {
    metrics_.lag.record(*shard_, static_cast<double>(now - env->published_unix_ns) / 1e9);
  }
  metrics_.received.add(*shard_);
  pubsub::Publication* p = pubsub::Publication::make(name, env->content, env->published_unix_ns,
                                                     env->trace, env->origin_node);
  const stream::ChannelRule* rule = rule_for(name);
  p->seal(msg->epoch, msg->offset, scratch_, rule != nullptr && rule->propagate);
  on_stream_message(it->first, *it->second, p);
}

void Bridge::before_sleep() {
  if (stopping_) return;
  reconcile_subscriptions();
  flush_publications();
  if (!received_.empty()) {
    deliver_(std::move(received_));
    received_.clear();
  }
  flush_results();
}

}  // namespace wstrace::cluster
