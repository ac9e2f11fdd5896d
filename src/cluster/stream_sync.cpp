// Channel streams in cluster mode: Redis keeps each channel's epoch, offset
// and history; the bridge is every channel's sequencer for this node.
//
// Keys, hash-tagged by channel so a channel's keys and Pub/Sub channel share
// one Redis Cluster slot:
//   <prefix>{<channel>}        the Pub/Sub channel
//   <prefix>{<channel>}:meta   hash: e (epoch), o (last offset)
//   <prefix>{<channel>}:hist   stream: one entry "<offset>-0" per kept message
//                              (t: publish time in ms, d: the envelope)
//
// Publishing is one script per publication (offset, history, PUBLISH at
// once). Reading a channel's position and history is one script too; for a
// channel this node subscribes to it also PUBLISHes a marker, so the node
// knows which received messages came before the read and which after.
//
// Per channel the bridge keeps the epoch and the last offset it forwarded
// to the workers and keeps that stream exact:
// - a message with the next offset is forwarded;
// - an older one (a duplicate) is dropped;
// - a hole (messages lost while the subscriber link was down, or dropped by
//   Redis for a slow client) holds the channel, re-reads it and forwards the
//   missing messages from the history, or a Gap notice for what the history
//   no longer has;
// - another epoch (Redis lost its data) is a reset: a Gap notice with
//   "reset", then the new stream.
// While a read is in flight the channel's messages are held, and released
// after the reply to the workers that asked: a subscriber joining at that
// position gets exactly what comes after it.
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include <algorithm>

#include "cluster/bridge.h"
#include "cluster/bridge_link.h"
#include "cluster/envelope.h"
#include "cluster/stream_sync.h"
#include "stream/stream_table.h"
#include "util/clock.h"
#include "util/log.h"

namespace wstrace::cluster {
namespace {

// KEYS: meta, hist. ARGV: pubsub channel, envelope, history size, key ttl
// (s), epoch if the stream is new, publish time (ms).
constexpr const char* kPublishScript = R"lua(
local e = redis.call('HGET', KEYS[1], 'e')
if not e then
  e = ARGV[5]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', e, 'o', 0)
end
local o = redis.call('HINCRBY', KEYS[1], 'o', 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
if tonumber(ARGV[3]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], o .. '-0', 't', ARGV[6], 'd', ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
redis.call('PUBLISH', ARGV[1], 'P' .. e .. ':' .. o .. ':' .. ARGV[2])
return {e, o}
)lua";

// KEYS: meta, hist. ARGV: pubsub channel, marker ('' = none), entries
// ('none', 'last', or an offset: those after it), count (0 = all), epoch if
// the stream is new, key ttl (s).
constexpr const char* kReadScript = R"lua(
local e = redis.call('HGET', KEYS[1], 'e')
local o = 0
if not e then
  e = ARGV[5]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', e, 'o', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[6])
else
  o = tonumber(redis.call('HGET', KEYS[1], 'o'))
end
if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
local n = tonumber(ARGV[4])
local entries = {}
if ARGV[3] == 'last' then
  if n > 0 then
    entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', n)
  else
    entries = redis.call('XREVRANGE', KEYS[2], '+', '-')
  end
elseif ARGV[3] ~= 'none' then
  local from = (tonumber(ARGV[3]) + 1) .. '-0'
  if n > 0 then
    entries = redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', n)
  else
    entries = redis.call('XRANGE', KEYS[2], from, '+')
  end
end
return {e, o, entries}
)lua";

std::string sha1_hex(std::string_view text) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : digest) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

uint64_t key_ttl_seconds(const BridgeOptions& o, const stream::ChannelRule* r) {
  uint64_t ns = o.stream_ttl_ns;
  if (r != nullptr) ns = std::max(ns, r->history_ttl_ns);
  return std::max<uint64_t>(1, (ns + 999'999'999ull) / 1'000'000'000ull);
}

struct ReadContext {
  Bridge* bridge;
  std::string channel;
  uint64_t read_id;          // 0: a History request's read (not positioned)
  stream::Request request;   // History only
};

}  // namespace

std::string Bridge::pubsub_channel(std::string_view channel) const {
  std::string out = opts_.prefix;
  out.push_back('{');
  out.append(channel);
  out.push_back('}');
  return out;
}

const stream::ChannelRule* Bridge::rule_for(std::string_view channel) {
  std::string key(channel);
  auto it = rule_cache_.find(key);
  if (it != rule_cache_.end()) return it->second;
  if (rule_cache_.size() > 100000) rule_cache_.clear();  // bounded: rebuilt as used
  const stream::ChannelRule* r = opts_.rules->find(channel);
  rule_cache_.emplace(std::move(key), r);
  return r;
}

void Bridge::set_rules(std::shared_ptr<const stream::Rules> rules) {
  loop_.post([this, rules = std::move(rules)] {
    opts_.rules = rules ? rules : std::make_shared<stream::Rules>();
    rule_cache_.clear();
  });
}

void Bridge::load_scripts() {
  if (publish_sha_.empty()) {
    publish_sha_ = sha1_hex(kPublishScript);
    read_sha_ = sha1_hex(kReadScript);
  }
  if (pub_->ctx() == nullptr) return;
  // Sent before any EVALSHA on this connection, so Redis knows them first.
  redisAsyncCommand(pub_->ctx(), nullptr, nullptr, "SCRIPT LOAD %s", kPublishScript);
  redisAsyncCommand(pub_->ctx(), nullptr, nullptr, "SCRIPT LOAD %s", kReadScript);
  // Reads that waited for this connection can go now.
  for (auto& [name, s] : syncs_) {
    if (s->subscribed && (s->resync || !s->waiting.empty())) maybe_read(name, *s);
  }
}

// ---------------------------------------------------------------------------
// Publishing

void Bridge::flush_publications() {
  if (outgoing_.empty()) return;
  if (!pub_->ready || pub_->ctx() == nullptr) {
    // Never an unbounded buffer: what cannot reach Redis now is dropped.
    size_t bytes = 0;
    for (auto* p : outgoing_) {
      bytes += charge(*p);
      report_publish(p, false, {}, 0);
      p->unref();
    }
    drop(outgoing_.size(), kLinkDown);
    budget_.release(outgoing_.size(), bytes);
    outgoing_.clear();
    return;
  }
  auto on_reply = [](redisAsyncContext*, void* r, void* priv) {
    static_cast<Bridge*>(priv)->on_publish_reply(r, r != nullptr && static_cast<redisReply*>(r)->type ==
                                                                      REDIS_REPLY_ERROR);
  };
  const std::string now_ms = std::to_string(unix_ns() / 1'000'000ull);
  for (auto* p : outgoing_) {
    Envelope e;
    e.origin_node = p->origin_node();
    e.published_unix_ns = p->published_unix_ns();
    e.has_trace = p->trace().valid();
    e.trace = p->trace();
    e.content = p->content();
    encode_envelope(e, envelope_);
    const stream::ChannelRule* rule = rule_for(p->channel());
    const std::string channel = pubsub_channel(p->channel());
    const std::string meta = channel + ":meta";
    const std::string hist = channel + ":hist";
    const std::string size = std::to_string(rule ? rule->history_size : 0);
    const std::string ttl = std::to_string(key_ttl_seconds(opts_, rule));
    const std::string epoch = stream::new_epoch();
    const char* argv[] = {"EVALSHA", publish_sha_.c_str(), "2", meta.c_str(), hist.c_str(),
                          channel.c_str(), envelope_.data(), size.c_str(), ttl.c_str(),
                          epoch.c_str(), now_ms.c_str()};
    const size_t lens[] = {7, publish_sha_.size(), 1, meta.size(), hist.size(), channel.size(),
                           envelope_.size(), size.size(), ttl.size(), epoch.size(), now_ms.size()};
    // hiredis buffers the command; it is written, pipelined with the rest,
    // when the socket is writable. Replies come in order.
    if (redisAsyncCommandArgv(pub_->ctx(), on_reply, this, 11, argv, lens) == REDIS_OK) {
      in_flight_.push_back({charge(*p), p});
    } else {
      drop(1, kPublishError);
      budget_.release(1, charge(*p));
      report_publish(p, false, {}, 0);
      p->unref();
    }
  }
  outgoing_.clear();
}

void Bridge::on_publish_reply(const void* r, bool error) {
  if (in_flight_.empty()) return;
  InFlight f = in_flight_.front();  // replies come in order on the publishing connection
  in_flight_.pop_front();
  budget_.release(1, f.charge);
  const auto* reply = static_cast<const redisReply*>(r);
  if (reply == nullptr) {
    drop(1, kLinkDown);  // the connection went away before Redis answered
    report_publish(f.pub, false, {}, 0);
  } else if (error) {
    metrics_.publish_errors.add(*shard_);
    drop(1, kPublishError);
    if (std::string_view(reply->str, reply->len).substr(0, 8) == "NOSCRIPT") load_scripts();
    report_publish(f.pub, false, {}, 0);
  } else {
    metrics_.published.add(*shard_);  // counted once Redis took it
    std::string_view epoch;
    uint64_t offset = 0;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_INTEGER) {
      epoch = std::string_view(reply->element[0]->str, reply->element[0]->len);
      offset = static_cast<uint64_t>(reply->element[1]->integer);
    }
    report_publish(f.pub, true, epoch, offset);
  }
  f.pub->unref();
}

void Bridge::report_publish(pubsub::Publication* p, bool ok, std::string_view epoch,
                            uint64_t offset) {
  const protocol::OwnedId* id = p->ack_id();
  // Successes only for publishers who asked; refusals always (counted on
  // the publishing worker, and answered there when it has an id).
  if (id == nullptr && (ok || p->publisher_connection() == 0)) return;
  if (results_out_.size() <= p->publisher_worker()) results_out_.resize(p->publisher_worker() + 1);
  stream::PublishResult r;
  r.connection_id = p->publisher_connection();
  r.has_id = id != nullptr;
  if (id != nullptr) r.id = *id;
  r.channel.assign(p->channel());
  r.ok = ok;
  r.epoch.assign(epoch);
  r.offset = offset;
  results_out_[p->publisher_worker()].push_back(std::move(r));
}

void Bridge::flush_results() {
  for (size_t w = 0; w < results_out_.size(); ++w) {
    if (results_out_[w].empty()) continue;
    results_(static_cast<unsigned>(w), std::move(results_out_[w]));
    results_out_[w] = {};
  }
}

// ---------------------------------------------------------------------------
// Requests from the workers

void Bridge::request(stream::Request r) {
  loop_.post([this, r = std::move(r)]() mutable { on_request(r); });
}

void Bridge::fail_request(stream::Request& r) {
  stream::Reply reply;
  reply.request = std::move(r);
  reply.ok = false;
  post_reply(std::move(reply));
}

void Bridge::post_reply(stream::Reply&& reply) {
  // Whatever was forwarded before goes first: the reply stands after it.
  if (!received_.empty()) {
    deliver_(std::move(received_));
    received_.clear();
  }
  reply_(std::move(reply));
}

void Bridge::on_request(stream::Request& r) {
  if (r.kind == stream::Request::Kind::Presence) {
    read_presence(std::move(r));
    return;
  }
  if (r.kind == stream::Request::Kind::History) {
    read_history(std::move(r));
    return;
  }
  if (!sub_->ready || !pub_->ready) {
    fail_request(r);
    return;
  }
  // The asking worker's subscription made this node interested first (its
  // task came before this one), so the channel is subscribed or about to be.
  if (auto want = desired_.find(r.channel); want == desired_.end() || !want->second) {
    // Given up again before this request came: nothing will follow the
    // channel here, so its position is read once.
    read_history(std::move(r));
    return;
  }
  auto& slot = syncs_[r.channel];
  if (!slot) {
    slot = std::make_unique<Sync>();
    slot->subscribed = subscribed_.count(r.channel) > 0 && unconfirmed_.count(r.channel) == 0;
  }
  Sync& s = *slot;
  if (r.kind == stream::Request::Kind::Position && s.known && s.subscribed && s.read_id == 0 &&
      !s.resync) {
    // Live here already: join after the last message forwarded.
    stream::Reply reply;
    reply.epoch = s.epoch;
    reply.offset = s.last;
    reply.request = std::move(r);
    post_reply(std::move(reply));
    return;
  }
  const std::string channel = r.channel;
  s.waiting.push_back(std::move(r));
  maybe_read(channel, s);
}

void Bridge::maybe_read(const std::string& channel, Sync& s) {
  if (s.read_id != 0 || !s.subscribed || !pub_->ready || pub_->ctx() == nullptr) return;
  if (s.waiting.empty() && !s.resync) return;
  // Entries after the lowest position anyone needs: the recovering
  // subscribers' since, and for a resync what this node forwarded last.
  bool want_entries = false;
  uint64_t since = UINT64_MAX;
  if (s.resync && s.known) {
    since = s.last;
    want_entries = true;
  }
  for (const auto& r : s.waiting) {
    if (r.kind == stream::Request::Kind::Recover) {
      since = std::min(since, r.since);
      want_entries = true;
    }
  }
  const stream::ChannelRule* rule = rule_for(channel);
  if (rule == nullptr || !rule->has_history()) want_entries = false;
  s.read_id = next_read_++;
  s.marker_seen = s.result_ready = false;
  metrics_.stream_reads.add(*shard_);
  const std::string ch = pubsub_channel(channel);
  const std::string meta = ch + ":meta";
  const std::string hist = ch + ":hist";
  const std::string marker = encode_marker(opts_.node_hash, s.read_id);
  const std::string which = want_entries ? std::to_string(since) : std::string("none");
  const std::string epoch = stream::new_epoch();
  const std::string ttl = std::to_string(key_ttl_seconds(opts_, rule));
  const char* argv[] = {"EVALSHA",   read_sha_.c_str(), "2",           meta.c_str(),
                        hist.c_str(), ch.c_str(),       marker.c_str(), which.c_str(),
                        "0",          epoch.c_str(),    ttl.c_str()};
  const size_t lens[] = {7, read_sha_.size(), 1, meta.size(), hist.size(), ch.size(),
                         marker.size(), which.size(), 1, epoch.size(), ttl.size()};
  auto* ctx = new ReadContext{this, channel, s.read_id, {}};
  auto cb = [](redisAsyncContext*, void* reply, void* priv) {
    std::unique_ptr<ReadContext> c(static_cast<ReadContext*>(priv));
    c->bridge->on_read_reply(c->channel, c->read_id, reply);
  };
  if (redisAsyncCommandArgv(pub_->ctx(), cb, ctx, 11, argv, lens) != REDIS_OK) {
    delete ctx;
    s.read_id = 0;
  }
}

void Bridge::read_history(stream::Request r) {
  if (!pub_->ready || pub_->ctx() == nullptr) {
    fail_request(r);
    return;
  }
  const stream::ChannelRule* rule = rule_for(r.channel);
  const std::string ch = pubsub_channel(r.channel);
  const std::string meta = ch + ":meta";
  const std::string hist = ch + ":hist";
  // History reads what the rule keeps; a subscription whose channel this
  // node no longer follows only needs the position.
  const bool entries = r.kind == stream::Request::Kind::History && rule && rule->has_history();
  const std::string which = !entries      ? std::string("none")
                            : r.has_since ? std::to_string(r.since)
                                          : std::string("last");
  const std::string count = std::to_string(r.limit);
  const std::string epoch = stream::new_epoch();
  const std::string ttl = std::to_string(key_ttl_seconds(opts_, rule));
  const char* argv[] = {"EVALSHA",    read_sha_.c_str(), "2",           meta.c_str(),
                        hist.c_str(), ch.c_str(),        "",            which.c_str(),
                        count.c_str(), epoch.c_str(),    ttl.c_str()};
  const size_t lens[] = {7, read_sha_.size(), 1, meta.size(), hist.size(), ch.size(), 0,
                         which.size(), count.size(), epoch.size(), ttl.size()};
  metrics_.stream_reads.add(*shard_);
  auto* ctx = new ReadContext{this, r.channel, 0, std::move(r)};
  auto cb = [](redisAsyncContext*, void* reply, void* priv) {
    std::unique_ptr<ReadContext> c(static_cast<ReadContext*>(priv));
    Bridge& b = *c->bridge;
    stream::Reply out;
    out.request = std::move(c->request);
    const auto* rep = static_cast<const redisReply*>(reply);
    ReadResult res;
    bool ok = false;
    if (rep != nullptr && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
        rep->element[0]->type == REDIS_REPLY_STRING &&
        rep->element[1]->type == REDIS_REPLY_INTEGER) {
      res.epoch.assign(rep->element[0]->str, rep->element[0]->len);
      res.top = static_cast<uint64_t>(rep->element[1]->integer);
      ok = true;
      const redisReply* entries = rep->element[2];
      for (size_t i = 0; entries->type == REDIS_REPLY_ARRAY && i < entries->elements; ++i) {
        const redisReply* e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) continue;
        auto offset = parse_entry_id(std::string_view(e->element[0]->str, e->element[0]->len));
        const redisReply* fields = e->element[1];
        std::string_view data;
        uint64_t t_ms = 0;
        for (size_t f = 0; f + 1 < fields->elements; f += 2) {
          std::string_view k(fields->element[f]->str, fields->element[f]->len);
          std::string_view v(fields->element[f + 1]->str, fields->element[f + 1]->len);
          if (k == "d") data = v;
          if (k == "t") t_ms = std::strtoull(std::string(v).c_str(), nullptr, 10);
        }
        const stream::ChannelRule* rule = b.rule_for(out.request.channel);
        if (rule && rule->history_ttl_ns > 0 &&
            unix_ns() > t_ms * 1'000'000ull + rule->history_ttl_ns) {
          continue;  // older than the rule keeps
        }
        if (!offset) continue;
        if (auto* p = b.entry_publication(out.request.channel, res.epoch, *offset, data)) {
          res.entries.push_back(p);
        }
      }
      std::sort(res.entries.begin(), res.entries.end(),
                [](auto* a, auto* z) { return a->offset() < z->offset(); });
    }
    if (!ok) {
      out.ok = false;
      b.post_reply(std::move(out));
      return;
    }
    out.epoch = res.epoch;
    out.offset = res.top;
    if (out.request.has_since) {
      const uint64_t first = res.entries.empty() ? res.top + 1 : res.entries.front()->offset();
      out.recovered = out.request.epoch == res.epoch &&
                      (out.request.since >= res.top || first <= out.request.since + 1);
      if (out.request.epoch != res.epoch) {
        for (auto* p : res.entries) p->unref();
        res.entries.clear();
      }
    }
    out.pubs = std::move(res.entries);
    b.post_reply(std::move(out));
  };
  if (redisAsyncCommandArgv(pub_->ctx(), cb, ctx, 11, argv, lens) != REDIS_OK) {
    stream::Request back = std::move(ctx->request);
    delete ctx;
    fail_request(back);
  }
}

pubsub::Publication* Bridge::entry_publication(const std::string& channel, std::string_view epoch,
                                               uint64_t offset, std::string_view envelope) {
  auto env = decode_envelope(envelope);
  if (!env) return nullptr;
  pubsub::Publication* p = pubsub::Publication::make(channel, env->content, env->published_unix_ns,
                                                     env->trace, env->origin_node);
  const stream::ChannelRule* rule = rule_for(channel);
  p->seal(epoch, offset, scratch_, rule != nullptr && rule->propagate);
  return p;
}

// ---------------------------------------------------------------------------
// Positioned reads: the reply, the marker, then completion

void Bridge::on_read_reply(const std::string& channel, uint64_t read_id, const void* r) {
  auto it = syncs_.find(channel);
  if (it == syncs_.end() || it->second->read_id != read_id) return;  // gone, or stale
  Sync& s = *it->second;
  const auto* rep = static_cast<const redisReply*>(r);
  if (rep == nullptr || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
      rep->element[0]->type != REDIS_REPLY_STRING ||
      rep->element[1]->type != REDIS_REPLY_INTEGER) {
    // No answer: the waiting joins fail, the held messages go on as they are.
    if (rep != nullptr && rep->type == REDIS_REPLY_ERROR &&
        std::string_view(rep->str, rep->len).substr(0, 8) == "NOSCRIPT") {
      load_scripts();
    }
    WS_LOG(Warn, "reading a channel's stream from Redis failed", {"channel", channel},
           {"error", rep != nullptr && rep->type == REDIS_REPLY_ERROR
                         ? std::string(rep->str, rep->len)
                         : std::string("no reply")});
    s.read_id = 0;
    for (auto& req : s.waiting) fail_request(req);
    s.waiting.clear();
    std::vector<pubsub::Publication*> held;
    held.swap(s.held);
    for (auto* p : held) on_stream_message(channel, s, p);
    return;
  }
  s.result = ReadResult{};
  s.result.epoch.assign(rep->element[0]->str, rep->element[0]->len);
  s.result.top = static_cast<uint64_t>(rep->element[1]->integer);
  const stream::ChannelRule* rule = rule_for(channel);
  const redisReply* entries = rep->element[2];
  for (size_t i = 0; entries->type == REDIS_REPLY_ARRAY && i < entries->elements; ++i) {
    const redisReply* e = entries->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING) {
      continue;
    }
    auto offset = parse_entry_id(std::string_view(e->element[0]->str, e->element[0]->len));
    const redisReply* fields = e->element[1];
    std::string_view data;
    uint64_t t_ms = 0;
    for (size_t f = 0; fields->type == REDIS_REPLY_ARRAY && f + 1 < fields->elements; f += 2) {
      std::string_view k(fields->element[f]->str, fields->element[f]->len);
      std::string_view v(fields->element[f + 1]->str, fields->element[f + 1]->len);
      if (k == "d") data = v;
      if (k == "t") t_ms = std::strtoull(std::string(v).c_str(), nullptr, 10);
    }
    if (!offset) continue;
    if (rule && rule->history_ttl_ns > 0 && unix_ns() > t_ms * 1'000'000ull + rule->history_ttl_ns) {
      continue;  // older than the rule keeps
    }
    if (auto* p = entry_publication(channel, s.result.epoch, *offset, data)) {
      s.result.entries.push_back(p);
    }
  }
  s.result_ready = true;
  if (s.marker_seen) complete_read(channel, s);
}

void Bridge::on_marker(std::string_view channel, uint64_t read_id) {
  auto it = syncs_.find(std::string(channel));
  if (it == syncs_.end() || it->second->read_id != read_id) return;
  Sync& s = *it->second;
  s.marker_seen = true;
  if (s.result_ready) complete_read(it->first, s);
}

void Bridge::complete_read(const std::string& channel, Sync& s) {
  ReadResult res = std::move(s.result);
  s.result = ReadResult{};
  const std::string& epoch = res.epoch;
  const uint64_t top = res.top;
  std::vector<pubsub::Publication*> held;
  held.swap(s.held);

  // What the workers' subscribers have not had yet, up to the read's
  // position: from the history and from what arrived meanwhile, in order.
  const bool reset = s.known && s.epoch != epoch;
  const uint64_t start = !s.known ? top + 1 : reset ? 1 : s.last + 1;
  std::vector<pubsub::Publication*> catchup;
  for (auto* p : res.entries) {
    if (p->offset() >= start && p->offset() <= top) catchup.push_back(p);
  }
  for (auto* p : held) {
    if (p->epoch() == epoch && p->offset() >= start && p->offset() <= top) catchup.push_back(p);
  }
  std::stable_sort(catchup.begin(), catchup.end(),
                   [](auto* a, auto* z) { return a->offset() < z->offset(); });
  uint64_t expected = start;
  bool first_gap = reset;
  for (auto* p : catchup) {
    if (p->offset() < expected) continue;  // the same message twice (history and live)
    if (p->offset() > expected || first_gap) {
      forward_gap(channel, epoch, expected, p->offset() - 1, first_gap ? s.epoch : std::string());
      first_gap = false;
    }
    p->ref();
    forward(p);
    expected = p->offset() + 1;
  }
  if (s.known && (expected <= top || first_gap)) {
    forward_gap(channel, epoch, expected, top, first_gap ? s.epoch : std::string());
  }
  if (reset) {
    WS_LOG(Warn, "a channel's stream was reset in Redis (its earlier state is lost)",
           {"channel", channel}, {"previous_epoch", s.epoch}, {"epoch", epoch});
  }
  s.epoch = epoch;
  s.last = top;
  s.known = true;

  // The joins: at `top`, with what they missed when they asked for it.
  const uint64_t first_kept = res.entries.empty() ? top + 1 : res.entries.front()->offset();
  for (auto& r : s.waiting) {
    stream::Reply reply;
    reply.epoch = epoch;
    reply.offset = top;
    if (r.kind == stream::Request::Kind::Recover) {
      reply.recovered =
          r.epoch == epoch && r.since <= top && (r.since == top || first_kept <= r.since + 1);
      if (reply.recovered) {
        for (auto* p : res.entries) {
          if (p->offset() > r.since && p->offset() <= top) {
            p->ref();
            reply.pubs.push_back(p);
          }
        }
      }
    }
    reply.request = std::move(r);
    post_reply(std::move(reply));
  }
  s.waiting.clear();
  for (auto* p : res.entries) p->unref();

  s.read_id = 0;
  s.marker_seen = s.result_ready = false;
  s.resync = false;
  // What came after the read goes on as live messages.
  for (auto* p : held) {
    if (p->epoch() == epoch && p->offset() <= top) {
      p->unref();  // part of the catch-up above (or older)
    } else {
      on_stream_message(channel, s, p);
    }
  }
  maybe_read(channel, s);
}

// ---------------------------------------------------------------------------
// Live messages

void Bridge::on_stream_message(const std::string& channel, Sync& s, pubsub::Publication* p) {
  if (s.read_id != 0) {
    s.held.push_back(p);  // until the read completes
    return;
  }
  if (!s.known) {
    s.epoch = p->epoch();
    s.last = p->offset();
    s.known = true;
    forward(p);
    return;
  }
  if (p->epoch() != s.epoch) {
    // Redis lost the stream (a restart without its data): a new epoch.
    WS_LOG(Warn, "a channel's stream was reset in Redis (its earlier state is lost)",
           {"channel", channel}, {"previous_epoch", s.epoch}, {"epoch", p->epoch()});
    forward_gap(channel, p->epoch(), 1, p->offset() - 1, s.epoch);
    s.epoch = p->epoch();
    s.last = p->offset();
    forward(p);
    return;
  }
  if (p->offset() <= s.last) {
    p->unref();  // had it already
    return;
  }
  if (p->offset() > s.last + 1) {
    // A hole: read the channel again and fill it from the history.
    metrics_.resyncs.add(*shard_);
    s.resync = true;
    maybe_read(channel, s);
    if (s.read_id != 0) {
      s.held.push_back(p);
      return;
    }
    // No read possible now: say what is lost and go on.
    forward_gap(channel, s.epoch, s.last + 1, p->offset() - 1, {});
  }
  s.last = p->offset();
  forward(p);
}

void Bridge::forward(pubsub::Publication* p) { received_.push_back(p); }

void Bridge::forward_gap(const std::string& channel, const std::string& epoch, uint64_t from,
                         uint64_t to, const std::string& previous_epoch) {
  pubsub::Publication* g =
      pubsub::Publication::make_gap(channel, epoch, from, to, previous_epoch, scratch_);
  if (g->gap_size() > 0) metrics_.lost.add(*shard_, g->gap_size());
  received_.push_back(g);
}

void Bridge::on_subscription_reply(std::string_view channel, bool subscribe) {
  if (channel.size() < opts_.prefix.size()) return;
  std::string name(channel.substr(opts_.prefix.size()));
  if (name.size() < 2 || name.front() != '{' || name.back() != '}') return;
  name = name.substr(1, name.size() - 2);
  // Confirmations come in the order the commands were sent: the channel is
  // subscribed once the last command, a SUBSCRIBE, is confirmed. Before,
  // a read's marker might be published while Redis still has it
  // unsubscribed, and never come back.
  auto pending = unconfirmed_.find(name);
  if (pending != unconfirmed_.end() && pending->second > 0 && --pending->second > 0) return;
  if (pending != unconfirmed_.end()) unconfirmed_.erase(pending);
  if (!subscribe || subscribed_.count(name) == 0) return;
  auto& slot = syncs_[name];
  if (!slot) slot = std::make_unique<Sync>();
  Sync& s = *slot;
  s.subscribed = true;
  if (s.known) {
    // Subscribed again after the link was lost: what was missed meanwhile.
    s.resync = true;
    metrics_.resyncs.add(*shard_);
  }
  maybe_read(name, s);
}

void Bridge::fail_stream_reads(const char* why) {
  (void)why;
  for (auto& [name, slot] : syncs_) {
    Sync& s = *slot;
    if (!sub_->ready) s.subscribed = false;
    for (auto& r : s.waiting) fail_request(r);
    s.waiting.clear();
    if (s.read_id != 0) {
      s.read_id = 0;
      s.marker_seen = s.result_ready = false;
      for (auto* p : s.result.entries) p->unref();
      s.result = ReadResult{};
      std::vector<pubsub::Publication*> held;
      held.swap(s.held);
      for (auto* p : held) on_stream_message(name, s, p);
    }
    if (s.known) s.resync = true;
  }
}

}  // namespace wstrace::cluster
