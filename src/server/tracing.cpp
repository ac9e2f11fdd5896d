// Spans of the WebSocket life (docs/TELEMETRY.md): the upgrade, the connection,
// each inbound message, its direct replies, broadcasts and fan-outs. Kept
// apart from the data path in worker.cpp: every function here starts with a
// cheap check and does nothing when tracing is off or the span not sampled.
#include "server/tracing.h"

#include <sys/socket.h>

#include "server/connection.h"
#include "server/worker.h"
#include "telemetry/trace_context.h"
#include "util/clock.h"

namespace wstrace::server {
namespace {

thread_local telemetry::Shard* t_shard = nullptr;

using telemetry::SpanKind;
using telemetry::StatusCode;

constexpr const char* kSystem = "wstrace";

void set_peer(telemetry::SpanData& d, const Connection& c) {
  std::string peer = c.peer.to_string();
  size_t colon = peer.rfind(':');
  std::string host = peer.substr(0, colon);
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  d.set("network.peer.address", host);
  d.set("network.peer.port", static_cast<int64_t>(c.peer.port));
}

bool is_abnormal(const Connection& c) {
  return c.initiator() == Initiator::Timeout || c.initiator() == Initiator::Error ||
         c.close_code() == ws::close_code::kSlowConsumer ||
         c.close_code() == ws::close_code::kInternalError ||
         c.close_code() == ws::close_code::kAbnormal;
}

}  // namespace

telemetry::Shard* thread_shard() { return t_shard; }
void set_thread_shard(telemetry::Shard* shard) { t_shard = shard; }

TraceContext to_trace_context(const telemetry::SpanStart& s) {
  TraceContext t;
  std::memcpy(t.trace_id, s.trace_id.bytes.data(), 16);
  std::memcpy(t.span_id, s.span_id.bytes.data(), 8);
  t.flags = s.trace_flags;
  return t;
}

telemetry::SpanStart to_span_start(const TraceContext& t) {
  telemetry::SpanStart s;
  std::memcpy(s.trace_id.bytes.data(), t.trace_id, 16);
  std::memcpy(s.span_id.bytes.data(), t.span_id, 8);
  s.trace_flags = t.flags;
  return s;
}

telemetry::SpanContext to_span_context(const TraceContext& t, bool remote) {
  telemetry::SpanContext c;
  std::memcpy(c.trace_id.bytes.data(), t.trace_id, 16);
  std::memcpy(c.span_id.bytes.data(), t.span_id, 8);
  c.trace_flags = t.flags;
  c.remote = remote;
  return c;
}

void trace_upgrade(Worker& w, Connection& c, const http::Request* req, int status,
                   std::string_view reason) {
  telemetry::Tracer& tr = w.tracer();
  const uint64_t now = unix_ns();
  if (!tr.enabled()) {
    if (status == 101) c.span.start_unix_ns = now;
    return;
  }
  const uint64_t accepted = c.span.start_unix_ns;
  std::optional<telemetry::SpanContext> parent;
  if (req != nullptr) {
    if (auto h = req->header("traceparent")) {
      parent = telemetry::parse_traceparent(*h);
    } else if (auto q = http::query_param(req->query, "traceparent")) {
      parent = telemetry::parse_traceparent(*q);
    }
    if (parent) {
      if (auto ts = req->header("tracestate")) parent->trace_state = telemetry::parse_tracestate(*ts);
    }
  }
  telemetry::SpanStart up = tr.start(parent ? &*parent : nullptr, accepted);
  if (tr.will_export(up)) {
    telemetry::SpanData d = tr.record(up, "websocket.upgrade", SpanKind::Server);
    if (parent) d.trace_state = parent->trace_state;
    d.set("http.request.method", req ? std::string(req->method) : std::string("GET"));
    if (req) d.set("url.path", std::string(req->path));
    d.set("http.response.status_code", static_cast<int64_t>(status));
    d.set("websocket.connection_id", std::to_string(c.id));
    set_peer(d, c);
    if (req) {
      if (auto ua = req->header("User-Agent")) d.set("user_agent.original", std::string(*ua));
      if (auto origin = req->header("Origin")) d.set("http.request.header.origin", std::string(*origin));
    }
    if (c.ssl != nullptr) {
      d.set("tls.protocol.version", std::string(net::tls_version(c.ssl)));
      d.set("tls.cipher", std::string(net::tls_cipher(c.ssl)));
      d.set("tls.resumed", net::tls_resumed(c.ssl));
    }
    if (status == 101) {
      d.set("websocket.compression", bool{c.deflate});
    } else {
      d.set("error.type", std::to_string(status));
      d.set("websocket.rejection.reason", std::string(reason));
      // HTTP semantic conventions: 4xx is the client's fault, not a server error.
      if (status >= 500) d.set_status(StatusCode::Error, std::string(reason));
    }
    tr.end(std::move(d), now);
  }
  if (status != 101) return;
  telemetry::SpanContext up_ctx = up.context();
  c.set_span(tr.start(up.valid() ? &up_ctx : nullptr, now));
  if (!c.span_valid()) c.span.start_unix_ns = now;
  if (parent) {
    c.ext().client_parent = parent->span_id;
    if (!parent->trace_state.empty()) c.ext().trace_state = parent->trace_state;
  }
}

void trace_tls_failure(Worker& w, Connection& c, std::string_view reason,
                       std::string_view message) {
  telemetry::Tracer& tr = w.tracer();
  if (!tr.enabled()) return;
  telemetry::SpanStart up = tr.start(nullptr, c.span.start_unix_ns);
  if (!tr.will_export(up)) return;
  telemetry::SpanData d = tr.record(up, "websocket.upgrade", SpanKind::Server);
  d.set("websocket.connection_id", std::to_string(c.id));
  set_peer(d, c);
  d.set("error.type", "tls_" + std::string(reason));
  d.set("websocket.rejection.reason", std::string(message));
  tr.end(std::move(d), unix_ns());
}

void trace_event(Worker& w, Connection& c, telemetry::Text name, telemetry::Attributes attrs) {
  if (!w.tracer().enabled() || !c.span_valid()) return;
  telemetry::Event e;
  e.name = std::move(name);
  e.time_unix_ns = unix_ns();
  e.attributes = std::move(attrs);
  auto& events = c.ext().events;
  if (events.size() < 32) events.push_back(std::move(e));
}

void trace_connection_end(Worker& w, Connection& c) {
  telemetry::Tracer& tr = w.tracer();
  if (!tr.enabled() || !c.span_valid()) return;
  // Head sampling may have dropped this connection; an abnormal one is
  // exported anyway — its data is in memory, so the decision is made now.
  const bool abnormal = is_abnormal(c);
  const telemetry::SpanStart span = c.span_start();
  if (!tr.will_export(span, abnormal)) return;
  const uint64_t now = unix_ns();
  telemetry::SpanData d = tr.record(span, "websocket.connection", SpanKind::Server);
  if (c.extra) d.trace_state = c.extra->trace_state;
  d.set("websocket.connection_id", std::to_string(c.id));
  set_peer(d, c);
  if (c.extra && !c.extra->user_id.empty()) d.set("user.id", c.extra->user_id);
  d.set("websocket.close.code", static_cast<int64_t>(c.close_code()));
  const std::string reason = c.extra ? c.extra->close_reason : std::string();
  d.set("websocket.close.reason", reason);
  d.set("websocket.close.initiator", initiator_name(c.initiator()));
  d.set("websocket.duration_ms", static_cast<double>(now - c.span.start_unix_ns) / 1e6);
  d.set("websocket.messages_sent", static_cast<int64_t>(c.stats.messages_sent));
  d.set("websocket.messages_received", static_cast<int64_t>(c.stats.messages_received));
  d.set("websocket.bytes_sent", static_cast<int64_t>(c.stats.bytes_sent));
  d.set("websocket.bytes_received", static_cast<int64_t>(c.stats.bytes_received));
  d.set("websocket.errors", static_cast<int64_t>(c.stats.errors));
  // Messages it did not get, by reason (a slow consumer's refused and
  // dropped ones; positions it was told it lost).
  d.set("websocket.messages_dropped", static_cast<int64_t>(c.stats.dropped()));
  if (c.stats.dropped_slow_consumer > 0) {
    d.set("websocket.messages_dropped.slow_consumer",
          static_cast<int64_t>(c.stats.dropped_slow_consumer));
  }
  if (c.stats.dropped_lost > 0) {
    d.set("websocket.messages_dropped.lost", static_cast<int64_t>(c.stats.dropped_lost));
  }
  d.set("websocket.compression", bool{c.deflate});
  if (c.rtt_100us > 0) d.set("websocket.heartbeat.rtt_ms", c.rtt_ms());
  d.set("websocket.endpoint", c.endpoint == static_cast<uint8_t>(ws::Endpoint::Echo) ? "echo" : "pubsub");
  if (c.extra) {
    for (auto& e : c.extra->events) d.events.push_back(std::move(e));
    c.extra->events.clear();
  }
  if (abnormal) d.set_status(StatusCode::Error, reason.empty() ? "abnormal closure" : reason);
  if (abnormal && !span.sampled()) {
    // The upgrade span was dropped by the same sampling decision: rebuild a
    // minimal one so the exported connection span has its parent.
    telemetry::SpanStart up;
    up.trace_id = c.span.trace_id;
    up.span_id = c.span.parent_span_id;
    if (c.extra) up.parent_span_id = c.extra->client_parent;
    up.parent_remote = up.parent_span_id.valid();
    up.start_unix_ns = c.span.start_unix_ns;
    up.trace_flags = span.trace_flags;
    if (up.span_id.valid()) {
      telemetry::SpanData u = tr.record(up, "websocket.upgrade", SpanKind::Server);
      if (c.extra) u.trace_state = c.extra->trace_state;
      u.set("http.response.status_code", static_cast<int64_t>(101));
      u.set("websocket.connection_id", std::to_string(c.id));
      set_peer(u, c);
      u.set("websocket.upgrade.reconstructed", true);
      tr.end(std::move(u), c.span.start_unix_ns, /*force=*/true);
    }
  }
  tr.end(std::move(d), now, /*force=*/abnormal);
}

telemetry::SpanStart begin_handle(Worker& w, const Connection& c, std::string_view traceparent,
                                  uint64_t start) {
  telemetry::Tracer& tr = w.tracer();
  if (!tr.enabled()) return {};
  std::optional<telemetry::SpanContext> parent;
  if (!traceparent.empty()) parent = telemetry::parse_traceparent(traceparent);
  if (parent) return tr.start(&*parent, start);
  // No traceparent of its own: a new trace (linked to the connection span at
  // the end) that follows the connection's sampling decision, as a
  // parent-based sampler would for a parent -- a connection that was not
  // sampled (a handshake traceparent with flags 00, or head sampling) does
  // not start sampled traces for its messages.
  if (c.span_valid()) return tr.start_root_decided_by(c.span_start().context(), start);
  return tr.start(nullptr, start);
}

void end_handle(Worker& w, const Connection& c, const telemetry::SpanStart& s,
                std::string_view type, std::string_view channel, size_t size,
                std::string_view error_code) {
  telemetry::Tracer& tr = w.tracer();
  if (!tr.will_export(s)) return;
  telemetry::SpanData d = tr.record(s, "websocket.message.handle", SpanKind::Consumer);
  d.set("messaging.system", kSystem);
  d.set("messaging.operation.type", "process");
  d.set("messaging.message.body.size", static_cast<int64_t>(size));
  d.set("websocket.message.type", std::string(type));
  d.set("websocket.connection_id", std::to_string(c.id));
  if (!channel.empty()) d.set("messaging.destination.name", std::string(channel));
  if (!error_code.empty()) {
    d.set("error.type", std::string(error_code));
    d.set_status(StatusCode::Error, std::string(error_code));
  }
  // Without a client traceparent the message starts its own trace; the link
  // ties it to the connection it came in on.
  if (!s.parent_span_id.valid() && c.span_valid()) d.add_link(c.span_start().context());
  tr.end(std::move(d));
}

void trace_send(Worker& w, const Connection& c, const telemetry::SpanStart& handle,
                std::string_view type, size_t size) {
  telemetry::Tracer& tr = w.tracer();
  if (!tr.will_export(handle)) return;
  telemetry::SpanContext parent = handle.context();
  telemetry::SpanStart s = tr.start(&parent);
  if (!tr.will_export(s)) return;
  telemetry::SpanData d = tr.record(s, "websocket.message.send", SpanKind::Producer);
  d.set("messaging.system", kSystem);
  d.set("messaging.operation.type", "send");
  d.set("messaging.message.body.size", static_cast<int64_t>(size));
  d.set("websocket.message.type", std::string(type));
  d.set("websocket.connection_id", std::to_string(c.id));
  tr.end(std::move(d));
}

TraceContext trace_broadcast(Worker& w, const telemetry::SpanStart& handle,
                             std::string_view channel, size_t size) {
  telemetry::Tracer& tr = w.tracer();
  if (!tr.enabled() || !handle.valid()) return {};
  telemetry::SpanContext parent = handle.context();
  telemetry::SpanStart s = tr.start(&parent);
  if (tr.will_export(s)) {
    telemetry::SpanData d = tr.record(s, "websocket.broadcast", SpanKind::Producer);
    d.set("messaging.system", kSystem);
    d.set("messaging.operation.type", "send");
    d.set("messaging.destination.name", std::string(channel));
    d.set("messaging.message.body.size", static_cast<int64_t>(size));
    d.set("websocket.node_id", w.node().cfg.node_id);
    tr.end(std::move(d));
  }
  return to_trace_context(s);
}

void trace_recovery(Worker& w, const Connection& c, const stream::Request& req,
                    std::string_view epoch, uint64_t offset, bool recovered, size_t messages) {
  telemetry::Tracer& tr = w.tracer();
  if (!tr.enabled() || !req.parent.valid()) return;
  telemetry::SpanContext parent = to_span_context(req.parent, false);
  telemetry::SpanStart s = tr.start(&parent, req.started_unix_ns);
  if (!tr.will_export(s)) return;
  telemetry::SpanData d = tr.record(s, "websocket.recovery", SpanKind::Internal);
  d.set("messaging.system", kSystem);
  d.set("messaging.destination.name", req.channel);
  d.set("websocket.connection_id", static_cast<int64_t>(c.id));
  d.set("websocket.recovery.since.epoch", req.epoch);
  d.set("websocket.recovery.since.offset", static_cast<int64_t>(req.since));
  d.set("websocket.recovery.recovered", recovered);
  d.set("websocket.recovery.messages", static_cast<int64_t>(messages));
  d.set("websocket.stream.epoch", std::string(epoch));
  d.set("websocket.stream.offset", static_cast<int64_t>(offset));
  tr.end(std::move(d));
}

void on_publication_done(const pubsub::Publication& p, void* context) {
  if (p.is_gap()) return;  // a notice, not a publication
  Node& node = *static_cast<Node*>(context);
  if (telemetry::Shard* shard = thread_shard()) {
    node.metrics.broadcast_recipients.record(*shard, p.recipients());
  }
  telemetry::Tracer& tr = node.telemetry->tracer();
  if (!tr.enabled() || !p.trace().valid()) return;
  telemetry::SpanContext parent = to_span_context(p.trace(), p.origin_node() != node.node_hash);
  uint64_t start = p.delivery_start_unix_ns();
  telemetry::SpanStart s = tr.start(&parent, start ? start : unix_ns());
  if (!tr.will_export(s)) return;
  telemetry::SpanData d = tr.record(s, "websocket.fanout", SpanKind::Consumer);
  d.set("messaging.system", kSystem);
  d.set("messaging.operation.type", "process");
  d.set("messaging.destination.name", std::string(p.channel()));
  d.set("messaging.message.body.size", static_cast<int64_t>(p.content_size()));
  d.set("websocket.fanout.recipients", static_cast<int64_t>(p.recipients()));
  d.set("websocket.fanout.dropped", static_cast<int64_t>(p.dropped()));
  d.set("websocket.node_id", node.cfg.node_id);
  // The publication's position: epoch:offset is its id within the channel.
  d.set("messaging.message.id", p.epoch() + ":" + std::to_string(p.offset()));
  d.set("websocket.stream.offset", static_cast<int64_t>(p.offset()));
  if (p.dropped() > 0) d.set_status(StatusCode::Error, "some subscribers were not delivered");
  tr.end(std::move(d));
}

}  // namespace wstrace::server
