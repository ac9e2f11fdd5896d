// What the server API (api.cpp, on its own thread) asks of a worker, run on
// the worker's thread: publish as a backend, answer History, and act on this
// worker's connections (disconnect, server-side subscribe and unsubscribe).
// A request's answers come back through the Node's api_* hooks, found by
// the connection id the request was given: kApiConnection plus its token.
#include "server/tracing.h"
#include "server/worker.h"
#include "util/clock.h"
#include "util/log.h"

namespace wstrace::server {

void Worker::api_publish(std::string_view channel, std::string_view content,
                         const TraceContext& parent, uint64_t token) {
  TraceContext trace;
  if (parent.valid()) trace = trace_broadcast(*this, to_span_start(parent), channel, content.size());
  pubsub::Publication* p =
      pubsub::Publication::make(channel, content, unix_ns(), trace, node_.node_hash);
  protocol::Id id;
  id.kind = protocol::Id::Kind::Uint;
  id.u = token;
  p->set_publisher(index_, kApiConnection | token, id);
  node_.metrics.messages_broadcasted.add(shard_, 1);
  published_.push_back(p);
}

void Worker::api_stream_request(stream::Request r) {
  r.worker = index_;
  if (node_.clustered()) {
    node_.cluster_request(std::move(r));
    return;
  }
  const unsigned owner = owner_of(r.channel, node_.workers.size());
  if (owner != index_) {
    node_.workers[owner]->post_stream_request(std::move(r));
    return;
  }
  stream::Reply reply;
  serve_stream_request(r, reply);
  complete_stream_request(reply);
}

uint32_t Worker::api_disconnect(std::string_view user, uint64_t connection_id, uint16_t code,
                                std::string_view reason) {
  uint32_t n = 0;
  for (Connection* c : connections()) {
    if (c->state != ConnState::Open) continue;
    const bool match = connection_id != 0 ? c->id == connection_id
                                          : c->extra != nullptr && c->extra->user_id == user;
    if (!match) continue;
    auto scope = conn_log_scope(*c);
    WS_LOG(Info, "closed by the server API", {"id", c->id}, {"peer", c->peer.to_string()},
           {"code", code});
    trace_event(*this, *c, "websocket.api_disconnect",
                {{"websocket.close.code", static_cast<int64_t>(code)}});
    close(*c, code, reason.empty() ? std::string_view("disconnected by the server") : reason,
          Initiator::Server, true);
    ++n;
  }
  return n;
}

uint32_t Worker::api_subscribe(std::string_view user, std::string_view channel, bool subscribe) {
  uint32_t n = 0;
  protocol::ClientMessage m;
  m.type = subscribe ? protocol::Type::Subscribe : protocol::Type::Unsubscribe;
  m.channel = channel;
  for (Connection* c : connections()) {
    if (c->state != ConnState::Open || c->extra == nullptr || c->extra->user_id != user) continue;
    // Not subscribed: nothing to undo (and no Error sent to the client).
    if (!subscribe && registry_.membership(*c, channel) == nullptr) continue;
    protocol::ErrorCode error{};
    // As if the client had asked: it gets Subscribed (with the position) or
    // Unsubscribed, and the channel's messages from then on.
    const bool failed = subscribe ? this->subscribe(*c, m, error) : unsubscribe(*c, m, error);
    if (!failed) ++n;
  }
  return n;
}

}  // namespace wstrace::server
