// History: the messages a channel keeps (its rule's history_size and
// history_ttl), asked of the channel's sequencer and answered as one
// {"type":"History",...} reply. Does not subscribe.
#include "server/worker.h"
#include "util/clock.h"

namespace wstrace::server {

bool Worker::history(Connection& c, const protocol::ClientMessage& m,
                     protocol::ErrorCode& error) {
  (void)error;
  request_stream(c, make_request(c, m, stream::Request::Kind::History));
  return false;
}

void Worker::history_done(Connection& c, stream::Reply& reply) {
  const stream::Request& req = reply.request;
  if (!reply.ok) {
    send_error(c, protocol::ErrorCode::Unavailable,
               "history is unavailable while the cluster link is down; ask again later",
               req.id.id);
    return;
  }
  reply_.clear();
  protocol::encode_history_begin(reply_, req.channel, reply.epoch, reply.offset,
                                 req.has_since ? (reply.recovered ? 1 : 0) : -1);
  bool first = true;
  for (const pubsub::Publication* p : reply.pubs) {
    protocol::encode_history_entry(reply_, first, p->offset(), p->content());
    first = false;
  }
  protocol::encode_history_end(reply_, req.id.id);
  send_reply(c, OutType::History);
}

}  // namespace wstrace::server
