// Presence and Join/Leave across the cluster (channel rules presence,
// join_leave). Each node writes its own members into the channel's sorted
// set <prefix>{C}:presence (member "<node id>\x1f<connection id>\x1f<user>",
// score: the unix ms it expires at) and refreshes them every third of
// --presence-ttl, so a node that dies without a word disappears from every
// answer within --presence-ttl. A Presence request drops the expired
// entries and reads the rest. Join and Leave travel on the channel's own
// Pub/Sub channel ('J'/'L' messages, envelope.h), so they reach every
// node's subscribers; each node builds the frame its clients get.
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <simdjson.h>

#include <algorithm>

#include "cluster/bridge.h"
#include "cluster/bridge_link.h"
#include "cluster/envelope.h"
#include "protocol/protocol.h"
#include "util/clock.h"

namespace wstrace::cluster {
namespace {

constexpr size_t kListMax = 100;  // clients listed in a Presence answer; counts are exact

std::string member_key(const std::string& node_id, uint64_t connection, const std::string& user) {
  std::string m = node_id;
  m.push_back('\x1f');
  m += std::to_string(connection);
  m.push_back('\x1f');
  m += user;
  return m;
}

}  // namespace

void Bridge::presence_update(std::string channel, uint64_t connection, std::string user,
                             bool joined, bool presence, bool join_leave) {
  loop_.post([this, channel = std::move(channel), connection, user = std::move(user), joined,
              presence, join_leave] {
    const std::string key = pubsub_channel(channel) + ":presence";
    const std::string member = member_key(opts_.node_id, connection, user);
    if (presence) {
      if (joined) {
        members_[channel][connection] = user;
      } else if (auto it = members_.find(channel); it != members_.end()) {
        it->second.erase(connection);
        if (it->second.empty()) members_.erase(it);
      }
    }
    if (!pub_->ready || pub_->ctx() == nullptr) return;  // written again once the link is back
    if (presence) {
      if (joined) {
        const std::string score =
            std::to_string((unix_ns() + opts_.presence_ttl_ns) / 1'000'000ull);
        const std::string ttl = std::to_string(2 * opts_.presence_ttl_ns / 1'000'000ull);
        redisAsyncCommand(pub_->ctx(), nullptr, nullptr, "ZADD %b %b %b", key.data(), key.size(),
                          score.data(), score.size(), member.data(), member.size());
        redisAsyncCommand(pub_->ctx(), nullptr, nullptr, "PEXPIRE %b %b", key.data(), key.size(),
                          ttl.data(), ttl.size());
      } else {
        redisAsyncCommand(pub_->ctx(), nullptr, nullptr, "ZREM %b %b", key.data(), key.size(),
                          member.data(), member.size());
      }
    }
    if (join_leave) {
      const std::string ch = pubsub_channel(channel);
      const std::string event =
          encode_member_event(joined, opts_.node_hash, connection, opts_.node_id, user);
      redisAsyncCommand(pub_->ctx(), nullptr, nullptr, "PUBLISH %b %b", ch.data(), ch.size(),
                        event.data(), event.size());
    }
  });
}

void Bridge::refresh_presence() {
  if (members_.empty() || !pub_->ready || pub_->ctx() == nullptr) return;
  const std::string score = std::to_string((unix_ns() + opts_.presence_ttl_ns) / 1'000'000ull);
  const std::string ttl = std::to_string(2 * opts_.presence_ttl_ns / 1'000'000ull);
  for (const auto& [channel, conns] : members_) {
    const std::string key = pubsub_channel(channel) + ":presence";
    std::vector<std::string> words{"ZADD", key};
    for (const auto& [id, user] : conns) {
      words.push_back(score);
      words.push_back(member_key(opts_.node_id, id, user));
    }
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& w : words) {
      argv.push_back(w.data());
      lens.push_back(w.size());
    }
    redisAsyncCommandArgv(pub_->ctx(), nullptr, nullptr, static_cast<int>(argv.size()),
                          argv.data(), lens.data());
    redisAsyncCommand(pub_->ctx(), nullptr, nullptr, "PEXPIRE %b %b", key.data(), key.size(),
                      ttl.data(), ttl.size());
  }
}

void Bridge::read_presence(stream::Request r) {
  const stream::ChannelRule* rule = rule_for(r.channel);
  if (rule == nullptr || !rule->presence) {
    stream::Reply reply;
    reply.enabled = false;
    reply.request = std::move(r);
    post_reply(std::move(reply));
    return;
  }
  if (!pub_->ready || pub_->ctx() == nullptr) {
    fail_request(r);
    return;
  }
  const std::string key = pubsub_channel(r.channel) + ":presence";
  const std::string now = std::to_string(unix_ns() / 1'000'000ull);
  // The expired entries (nodes gone without a word) go first; then the rest.
  redisAsyncCommand(pub_->ctx(), nullptr, nullptr, "ZREMRANGEBYSCORE %b -inf %b", key.data(),
                    key.size(), now.data(), now.size());
  auto* ctx = new std::pair<Bridge*, stream::Request>(this, std::move(r));
  auto cb = [](redisAsyncContext*, void* rep, void* priv) {
    std::unique_ptr<std::pair<Bridge*, stream::Request>> c(
        static_cast<std::pair<Bridge*, stream::Request>*>(priv));
    const auto* reply = static_cast<const redisReply*>(rep);
    stream::Reply out;
    out.request = std::move(c->second);
    if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY) {
      out.ok = false;
      c->first->post_reply(std::move(out));
      return;
    }
    std::vector<protocol::PresenceClient> clients;
    for (size_t i = 0; i < reply->elements; ++i) {
      const redisReply* e = reply->element[i];
      if (e->type != REDIS_REPLY_STRING) continue;
      const std::string_view m(e->str, e->len);
      const size_t a = m.find('\x1f');
      const size_t b = a == std::string_view::npos ? a : m.find('\x1f', a + 1);
      if (b == std::string_view::npos || !simdjson::validate_utf8(m.data(), m.size())) continue;
      clients.push_back({m.substr(0, a),
                         std::strtoull(std::string(m.substr(a + 1, b - a - 1)).c_str(), nullptr, 10),
                         m.substr(b + 1)});
    }
    Buffer b;
    protocol::encode_presence_members(b, clients, kListMax);
    out.presence.assign(reinterpret_cast<const char*>(b.data()), b.size());
    c->first->post_reply(std::move(out));
  };
  redisAsyncCommand(pub_->ctx(), cb, ctx, "ZRANGE %b 0 -1", key.data(), key.size());
}

void Bridge::on_member_event(std::string_view channel, const PubsubMessage& m) {
  if (!on_member_event_) return;
  // From anyone who can write to Redis: the frame is built here, escaped.
  if (!simdjson::validate_utf8(m.user.data(), m.user.size()) ||
      !simdjson::validate_utf8(m.node_id.data(), m.node_id.size())) {
    drop(1, kMalformed);
    return;
  }
  const bool join = m.kind == PubsubMessage::Kind::Join;
  Buffer b;
  protocol::encode_member_event(b, join, channel, m.user, m.connection, m.node_id);
  on_member_event_(std::string(channel),
                   std::string(reinterpret_cast<const char*>(b.data()), b.size()), join,
                   m.node == opts_.node_hash ? m.connection : 0);
}

}  // namespace wstrace::cluster
