// Subscribe and Unsubscribe, and recovery.
//
// A subscriber joins a channel at a position. When this thread already
// delivers the channel (it has a position for it), it joins there at once.
// Otherwise it is added as a pending member (skipped by deliveries) and the
// channel's sequencer is asked for the position (and, with "since", for
// every message after it); the reply comes in the channel's ordered stream,
// so the subscriber gets Subscribed, then what it missed, then the live
// messages, with no gap and nothing twice.
#include "server/tracing.h"
#include "server/worker.h"
#include "util/clock.h"
#include "util/log.h"

namespace wstrace::server {

bool Worker::subscribe(Connection& c, const protocol::ClientMessage& m,
                       protocol::ErrorCode& error) {
  if (const pubsub::Channel::Member* member = registry_.membership(c, m.channel)) {
    // Subscribing twice is not an error: it answers Subscribed again (at this
    // thread's position) and still delivers once. While the first one waits
    // for its position, the second waits for one too.
    pubsub::Channel* ch = registry_.find(m.channel);
    if (member->pending == 0 && ch->positioned()) {
      reply_.clear();
      protocol::encode_subscribed(reply_, m.channel, m.id, ch->epoch(), ch->offset());
      send_reply(c, OutType::Subscribed);
    } else {
      // Its reply places the same pending membership (the first to come).
      stream::Request r = make_request(c, m, stream::Request::Kind::Position);
      r.tag = member->pending;
      request_stream(c, std::move(r));
    }
    return false;
  }
  if (++request_tag_ == 0) ++request_tag_;
  const uint32_t tag = request_tag_;
  auto r = registry_.subscribe(c, m.channel, cfg_.max_subscriptions, tag);
  if (r == pubsub::Registry::SubscribeResult::TooMany) {
    error = protocol::ErrorCode::TooManySubscriptions;
    send_error(c, error, "subscription limit reached (--max-subscriptions)", m.id);
    return true;
  }
  node_.metrics.channel_subscriptions.add(shard_, 1);
  node_.metrics.subscriptions_active.add(shard_, 1);
  if (member_rule_possible()) presence_changed(c, m.channel, true);
  pubsub::Channel* ch = registry_.find(m.channel);
  if (!m.since.present && ch->positioned()) {
    // The channel is live on this thread: join at its position.
    registry_.activate(c, m.channel);
    reply_.clear();
    protocol::encode_subscribed(reply_, m.channel, m.id, ch->epoch(), ch->offset());
    send_reply(c, OutType::Subscribed);
    return false;
  }
  stream::Request req = make_request(
      c, m, m.since.present ? stream::Request::Kind::Recover : stream::Request::Kind::Position);
  req.tag = tag;
  request_stream(c, std::move(req));
  return false;
}

void Worker::subscribe_done(Connection& c, stream::Reply& reply) {
  const stream::Request& req = reply.request;
  const pubsub::Channel::Member* member = registry_.membership(c, req.channel);
  if (member == nullptr || (member->pending != 0 && member->pending != req.tag)) {
    // Unsubscribed while it waited (and maybe subscribed again: then the new
    // membership waits for its own reply). Every request has its reply, so
    // this one is answered, with the position but nothing else.
    if (reply.ok) {
      reply_.clear();
      protocol::encode_subscribed(reply_, req.channel, req.id.id, reply.epoch, reply.offset);
      send_reply(c, OutType::Subscribed);
    } else {
      send_error(c, protocol::ErrorCode::Unavailable,
                 "the channel's position is unknown while the cluster link is down; subscribe "
                 "again later",
                 req.id.id);
    }
    return;
  }
  if (!reply.ok) {
    // No sequencer could place it (the cluster link is down): not subscribed.
    if (member->pending != 0) {
      registry_.unsubscribe(c, req.channel);
      node_.metrics.subscriptions_active.add(shard_, -1);
      if (member_rule_possible()) presence_changed(c, req.channel, false);
    }
    send_error(c, protocol::ErrorCode::Unavailable,
               "the channel's position is unknown while the cluster link is down; subscribe "
               "again later",
               req.id.id);
    return;
  }
  const bool joining = member->pending != 0;
  pubsub::Channel* ch = registry_.activate(c, req.channel);
  // The reply stands where this thread's delivery of the channel stands.
  ch->set_position(reply.epoch, reply.offset);
  const bool recovering = joining && req.kind == stream::Request::Kind::Recover;
  reply_.clear();
  protocol::encode_subscribed(reply_, req.channel, req.id.id, reply.epoch, reply.offset,
                              recovering ? (reply.recovered ? 1 : 0) : -1);
  send_reply(c, OutType::Subscribed);
  if (!recovering) return;
  for (pubsub::Publication* p : reply.pubs) send_publication(c, p);
  node_.metrics.recoveries.add(shard_, 1, reply.recovered ? 0u : 1u);
  node_.metrics.recovered_messages.add(shard_, reply.pubs.size());
  trace_recovery(*this, c, req, reply.epoch, reply.offset, reply.recovered, reply.pubs.size());
  auto scope = conn_log_scope(c);
  WS_LOG(Debug, "subscription recovered", {"id", c.id}, {"channel", req.channel},
         {"since", req.since}, {"offset", reply.offset}, {"recovered", reply.recovered},
         {"messages", static_cast<uint64_t>(reply.pubs.size())});
}

bool Worker::unsubscribe(Connection& c, const protocol::ClientMessage& m,
                         protocol::ErrorCode& error) {
  if (!registry_.unsubscribe(c, m.channel)) {
    error = protocol::ErrorCode::NotSubscribed;
    send_error(c, error, "not subscribed to this channel", m.id);
    return true;
  }
  node_.metrics.subscriptions_active.add(shard_, -1);
  reply_.clear();
  protocol::encode_unsubscribed(reply_, m.channel, m.id);
  send_reply(c, OutType::Unsubscribed);
  if (member_rule_possible()) presence_changed(c, m.channel, false);
  return false;
}

}  // namespace wstrace::server
