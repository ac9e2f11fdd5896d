// Channel streams on the worker side: asking a channel's sequencer, and, in
// in-process mode, being the sequencer of the channels this worker owns.
//
// Every channel has one sequencer, so every subscriber on every thread sees
// its messages in one order: in-process the owner worker (a hash of the
// name picks it) seals each publication with the next offset and posts it
// to every worker; with --redis, Redis assigns the offsets and the cluster
// bridge is the sequencer of every channel. Requests (a subscriber's
// position, a recovery, History) are answered by the sequencer in the same
// ordered stream as the publications (see stream/requests.h).
#include <functional>

#include "server/tracing.h"
#include "server/worker.h"
#include "util/clock.h"
#include "util/log.h"

namespace wstrace::server {

unsigned Worker::owner_of(std::string_view channel, size_t workers) {
  if (workers <= 1) return 0;
  return static_cast<unsigned>(std::hash<std::string_view>{}(channel) % workers);
}

// ---------------------------------------------------------------------------
// Connections waiting for an answer

void Worker::track(Connection& c) {
  if (c.ext().outstanding++ == 0) tracked_[c.id] = &c;
}

void Worker::untrack(Connection& c) {
  if (c.extra && c.extra->outstanding > 0 && --c.extra->outstanding == 0) tracked_.erase(c.id);
}

Connection* Worker::tracked(uint64_t connection_id) const {
  auto it = tracked_.find(connection_id);
  return it == tracked_.end() ? nullptr : it->second;
}

// ---------------------------------------------------------------------------
// Asking

stream::Request Worker::make_request(Connection& c, const protocol::ClientMessage& m,
                                     stream::Request::Kind kind) const {
  stream::Request r;
  r.kind = kind;
  r.worker = index_;
  r.connection_id = c.id;
  r.channel.assign(m.channel);
  r.id = protocol::OwnedId(m.id);
  if (m.since.present) {
    r.has_since = true;
    r.epoch.assign(m.since.epoch);
    r.since = m.since.offset;
  }
  r.limit = m.limit;
  r.started_unix_ns = unix_ns();
  if (handle_.valid()) r.parent = to_trace_context(handle_);
  return r;
}

void Worker::request_stream(Connection& c, stream::Request request) {
  track(c);  // found again by id when the answer comes
  if (node_.clustered()) {
    node_.cluster_request(std::move(request));
    return;
  }
  const unsigned owner = owner_of(request.channel, node_.workers.size());
  if (owner == index_) {
    stream::Reply reply;
    serve_stream_request(request, reply);
    complete_stream_request(reply);
    return;
  }
  node_.workers[owner]->post_stream_request(std::move(request));
}

void Worker::post_stream_reply(stream::Reply reply) {
  loop_.post([this, reply = std::move(reply)]() mutable { complete_stream_request(reply); });
}

void Worker::complete_stream_request(stream::Reply& reply) {
  // Everything the sequencer sent before this reply is delivered first: the
  // reply's position is right after it.
  deliver_incoming();
  if (is_api(reply.request.connection_id)) {
    if (node_.api_reply) {
      node_.api_reply(std::move(reply));
    } else {
      for (pubsub::Publication* p : reply.pubs) p->unref();
    }
    reply.pubs.clear();
    return;
  }
  Connection* c = tracked(reply.request.connection_id);
  if (c != nullptr) {
    untrack(*c);
    if (c->state == ConnState::Open) {
      // The answer belongs to the message that asked: its replies' send
      // spans are children of that message's handle span, whether the
      // answer came at once (owner here) or later from another thread.
      const telemetry::SpanStart handling = handle_;
      if (reply.request.parent.valid()) handle_ = to_span_start(reply.request.parent);
      if (reply.request.kind == stream::Request::Kind::Presence) {
        presence_done(*c, reply);
      } else if (reply.request.kind == stream::Request::Kind::History) {
        history_done(*c, reply);
      } else {
        subscribe_done(*c, reply);
      }
      handle_ = handling;
    }
  }
  for (pubsub::Publication* p : reply.pubs) p->unref();
  reply.pubs.clear();
}

// ---------------------------------------------------------------------------
// Being a channel's sequencer (in-process mode)

void Worker::post_stream_request(stream::Request request) {
  loop_.post([this, request = std::move(request)]() mutable {
    stream::Reply reply;
    serve_stream_request(request, reply);
    node_.workers[reply.request.worker]->post_stream_reply(std::move(reply));
  });
}

void Worker::serve_stream_request(stream::Request& request, stream::Reply& reply) {
  if (request.kind == stream::Request::Kind::Presence) {
    serve_presence(request, reply);
    reply.request = std::move(request);
    return;
  }
  const uint64_t now = unix_ns();
  stream::Stream& s = streams_.get(request.channel, now);
  reply.epoch = s.epoch();
  reply.offset = s.offset();
  switch (request.kind) {
    case stream::Request::Kind::Position:
      break;
    case stream::Request::Kind::Recover: {
      stream::Range r = streams_.recover(s, request.epoch, request.since, now);
      reply.recovered = r.complete;
      reply.pubs = std::move(r.pubs);
      break;
    }
    case stream::Request::Kind::Presence:
      break;  // answered above
    case stream::Request::Kind::History: {
      const std::string_view epoch(request.epoch);
      stream::Range r = streams_.read(s, request.has_since ? &epoch : nullptr, request.since,
                                      request.limit, now);
      reply.recovered = r.complete && r.epoch_matched;
      reply.pubs = std::move(r.pubs);
      break;
    }
  }
  reply.request = std::move(request);
}

void Worker::post_for_sequencing(std::vector<pubsub::Publication*> batch) {
  loop_.post([this, batch = std::move(batch)] {
    to_sequence_.insert(to_sequence_.end(), batch.begin(), batch.end());
  });
}

void Worker::sequence(std::vector<pubsub::Publication*>& pubs) {
  const uint64_t now = unix_ns();
  for (pubsub::Publication* p : pubs) {
    stream::Stream& s = streams_.get(p->channel(), now);
    streams_.append(s, p, now);  // seals it with the next offset
    if (const protocol::OwnedId* id = p->ack_id()) {
      stream::PublishResult r;
      r.connection_id = p->publisher_connection();
      r.has_id = true;
      r.id = *id;
      r.channel.assign(p->channel());
      r.epoch = p->epoch();
      r.offset = p->offset();
      results_out_[p->publisher_worker()].push_back(std::move(r));
    }
    sequenced_.push_back(p);
  }
  pubs.clear();
  history_bytes_.store(streams_.bytes(), std::memory_order_relaxed);
  history_entries_.store(streams_.entries(), std::memory_order_relaxed);
  history_streams_.store(streams_.streams(), std::memory_order_relaxed);
  history_evicted_.store(streams_.evicted_for_memory(), std::memory_order_relaxed);
}

void Worker::finish_publish_results() {
  for (size_t w = 0; w < results_out_.size(); ++w) {
    if (results_out_[w].empty()) continue;
    if (w == index_) {
      on_publish_results(results_out_[w]);
      results_out_[w].clear();
    } else {
      node_.workers[w]->post_publish_results(std::move(results_out_[w]));
      results_out_[w] = {};
    }
  }
}

void Worker::post_publish_results(std::vector<stream::PublishResult> results) {
  loop_.post([this, results = std::move(results)]() mutable { on_publish_results(results); });
}

void Worker::on_publish_results(std::vector<stream::PublishResult>& results) {
  std::vector<stream::PublishResult> api_results;  // for the server API, in one task
  for (auto& r : results) {
    if (!r.ok) {
      node_.metrics.messages_dropped.add(shard_, 1, static_cast<uint32_t>(DropReason::Unavailable));
    }
    if (!r.has_id) continue;  // nobody waits for an answer
    if (is_api(r.connection_id)) {
      api_results.push_back(std::move(r));
      continue;
    }
    Connection* c = tracked(r.connection_id);
    if (c == nullptr) continue;  // gone
    untrack(*c);
    if (c->state != ConnState::Open) continue;
    if (r.ok) {
      if (!r.has_id) continue;
      reply_.clear();
      protocol::encode_published(reply_, r.channel, r.id.id, r.epoch, r.offset);
      send_reply(*c, OutType::Published);
    } else {
      send_error(*c, protocol::ErrorCode::Unavailable,
                 "not published: the cluster link is down (Redis unreachable); publish again "
                 "later",
                 r.has_id ? r.id.id : protocol::Id{});
    }
  }
  if (!api_results.empty() && node_.api_published) node_.api_published(std::move(api_results));
}

void Worker::apply_rules(std::shared_ptr<const stream::Rules> rules) {
  rules_ = rules;
  streams_.set_rules(std::move(rules));
}

void Worker::sweep_streams() {
  if (node_.clustered()) return;
  streams_.sweep(unix_ns(), cfg_.stream_ttl_ns,
                 [this](const std::string& channel) { return node_.directory.active(channel); });
  history_bytes_.store(streams_.bytes(), std::memory_order_relaxed);
  history_entries_.store(streams_.entries(), std::memory_order_relaxed);
  history_streams_.store(streams_.streams(), std::memory_order_relaxed);
  history_evicted_.store(streams_.evicted_for_memory(), std::memory_order_relaxed);
}

void Worker::collect_streams(std::vector<StreamInfo>& out) const {
  streams_.for_each([&](const stream::Stream& s) {
    out.push_back({s.name(), s.epoch(), s.offset(), s.entries(), s.bytes()});
  });
}

Worker::HistoryTotals Worker::history_totals() const {
  HistoryTotals t;
  t.bytes = history_bytes_.load(std::memory_order_relaxed);
  t.entries = history_entries_.load(std::memory_order_relaxed);
  t.streams = history_streams_.load(std::memory_order_relaxed);
  t.evicted_for_memory = history_evicted_.load(std::memory_order_relaxed);
  return t;
}

// ---------------------------------------------------------------------------
// One publication to one connection, outside a fan-out run

void Worker::send_publication(Connection& c, pubsub::Publication* p) {
  pubsub::Frame* f = c.deflate ? p->deflated(c.server_window_bits, deflaters_) : p->plain();
  f->ref();
  send_frame(c, f, OutType::Message);
}

}  // namespace wstrace::server
