// Presence and Join/Leave (channel rules `presence`, `join_leave`; one node).
//
// The channel's owner worker — the one that sequences it — keeps who is
// subscribed: every worker tells it when one of its connections joins
// (a Subscribe accepted) or leaves (Unsubscribe, or the connection ends).
// A Presence request is answered by the owner like History; with
// join_leave the owner sends {"type":"Join"|"Leave",...} to the channel's
// subscribers on every worker. Channels whose rule has neither key cost
// nothing: the rules are looked up only while some rule has one.

#include "protocol/json_writer.h"
#include "server/worker.h"
#include "util/clock.h"

namespace wstrace::server {
namespace {

constexpr size_t kPresenceListMax = 100;  // clients listed; the counts are exact

void append_text(Buffer& b, std::string_view s) { b.append(s.data(), s.size()); }

}  // namespace

const stream::ChannelRule* Worker::member_rule(std::string_view channel) const {
  if (!rules_ || !rules_->any_presence()) return nullptr;
  const stream::ChannelRule* r = rules_->find(channel);
  return r != nullptr && r->tracks_members() ? r : nullptr;
}

void Worker::presence_changed(const Connection& c, std::string_view channel, bool joined) {
  const stream::ChannelRule* rule = member_rule(channel);
  if (rule == nullptr) return;
  PresenceChange p;
  p.channel.assign(channel);
  p.connection_id = c.id;
  if (c.extra) p.user = c.extra->user_id;
  p.joined = joined;
  p.presence = rule->presence;
  p.join_leave = rule->join_leave;
  if (node_.cluster_presence) {
    // In a cluster Redis keeps every node's members, and Join/Leave go
    // through the channel's Redis channel to every node.
    node_.cluster_presence(std::move(p));
    return;
  }
  const unsigned owner = owner_of(channel, node_.workers.size());
  if (owner == index_) {
    apply_presence(p);
  } else {
    Worker* w = node_.workers[owner];
    w->loop().post([w, p = std::move(p)] { w->apply_presence(p); });
  }
}

void Worker::apply_presence(const PresenceChange& p) {
  if (p.presence) {
    auto& members = presence_[p.channel];
    if (p.joined) {
      members[p.connection_id] = p.user;
    } else {
      members.erase(p.connection_id);
      if (members.empty()) presence_.erase(p.channel);
    }
  }
  if (!p.join_leave) return;
  Buffer b;
  protocol::encode_member_event(b, p.joined, p.channel, p.user, p.connection_id);
  pubsub::Frame* f = pubsub::Frame::make(ws::Opcode::Text, b.data(), b.size());
  const OutType type = p.joined ? OutType::Join : OutType::Leave;
  for (Worker* w : node_.workers) {
    f->ref();
    if (w == this) {
      deliver_event(p.channel, f, type, p.connection_id);
    } else {
      w->loop().post([w, channel = p.channel, f, type, id = p.connection_id] {
        w->deliver_event(channel, f, type, id);
      });
    }
  }
  f->unref();
}

void Worker::deliver_event(std::string_view channel, pubsub::Frame* f, OutType type,
                           uint64_t subject) {
  if (pubsub::Channel* ch = registry_.find(channel)) {
    for (const auto& m : ch->members()) {
      if (m.pending != 0) continue;  // not placed yet: it has no position to see it at
      Connection& c = *static_cast<Connection*>(m.sub);
      if (c.state != ConnState::Open || c.id == subject) continue;  // not about itself
      f->ref();
      send_frame(c, f, type);
    }
  }
  f->unref();
}

void Worker::serve_presence(const stream::Request& request, stream::Reply& reply) {
  const stream::ChannelRule* rule = rules_ ? rules_->find(request.channel) : nullptr;
  if (rule == nullptr || !rule->presence) {
    reply.enabled = false;
    return;
  }
  std::vector<protocol::PresenceClient> clients;
  if (auto it = presence_.find(request.channel); it != presence_.end()) {
    for (const auto& [id, user] : it->second) clients.push_back({{}, id, user});
  }
  Buffer b;
  protocol::encode_presence_members(b, clients, kPresenceListMax);
  reply.presence.assign(reinterpret_cast<const char*>(b.data()), b.size());
}

bool Worker::presence(Connection& c, const protocol::ClientMessage& m, protocol::ErrorCode& error) {
  const stream::ChannelRule* rule = member_rule(m.channel);
  if (rule == nullptr || !rule->presence) {
    error = protocol::ErrorCode::NotEnabled;
    send_error(c, error,
               "presence is not enabled for this channel (a channel rule with presence = true)",
               m.id);
    return true;
  }
  request_stream(c, make_request(c, m, stream::Request::Kind::Presence));
  return false;
}

void Worker::presence_done(Connection& c, const stream::Reply& reply) {
  if (!reply.ok) {
    send_error(c, protocol::ErrorCode::Unavailable,
               "presence cannot be read while the cluster link is down; ask again later",
               reply.request.id.id);
    return;
  }
  if (!reply.enabled) {
    send_error(c, protocol::ErrorCode::NotEnabled,
               "presence is not enabled for this channel (a channel rule with presence = true)",
               reply.request.id.id);
    return;
  }
  reply_.clear();
  append_text(reply_, "{\"type\":\"Presence\",\"channel\":");
  protocol::append_json_string(reply_, reply.request.channel);
  append_text(reply_, ",");
  append_text(reply_, reply.presence);
  protocol::append_id_field(reply_, reply.request.id.id);
  append_text(reply_, "}");
  send_reply(c, OutType::Presence);
}

}  // namespace wstrace::server
