// Spans of the WebSocket life (docs/TELEMETRY.md). Each function is a no-op when
// tracing is disabled or the span is not sampled.
#pragma once

#include <string_view>

#include "http/request.h"
#include "pubsub/publication.h"
#include "stream/requests.h"
#include "telemetry/span.h"
#include "telemetry/tracer.h"
#include "util/trace_context.h"

namespace wstrace::server {

class Worker;
class Connection;

TraceContext to_trace_context(const telemetry::SpanStart& s);
// The span a TraceContext names, as a parent for children (its start time
// and own parent are not carried).
telemetry::SpanStart to_span_start(const TraceContext& t);
telemetry::SpanContext to_span_context(const TraceContext& t, bool remote);

// websocket.upgrade, from accept to the 101 or the rejection; on 101 it also
// starts the connection span (kept compact in c.span until the end).
void trace_upgrade(Worker& w, Connection& c, const http::Request* req, int status,
                   std::string_view reason);
// A TLS handshake that failed: a websocket.upgrade span with no HTTP status,
// error.type tls_<reason> and OpenSSL's message.
void trace_tls_failure(Worker& w, Connection& c, std::string_view reason,
                       std::string_view message);
// A span event on the connection span (heartbeat timeout, protocol error, ...).
void trace_event(Worker& w, Connection& c, telemetry::Text name, telemetry::Attributes attrs);
// websocket.connection, at close; abnormal ends are exported even unsampled.
void trace_connection_end(Worker& w, Connection& c);

// websocket.message.handle: parent = the message's traceparent, or a new
// trace linked to the connection span whose sampling decision is made with
// the connection span as the parent (Tracer::start_root_decided_by).
telemetry::SpanStart begin_handle(Worker& w, const Connection& c, std::string_view traceparent,
                                  uint64_t start_unix_ns);
void end_handle(Worker& w, const Connection& c, const telemetry::SpanStart& s,
                std::string_view type, std::string_view channel, size_t size,
                std::string_view error_code);
// websocket.message.send: a direct reply, child of the handle span.
void trace_send(Worker& w, const Connection& c, const telemetry::SpanStart& handle,
                std::string_view type, size_t size);
// websocket.broadcast: child of the handle span; returns the context the
// publication carries (to local fan-outs and across Redis).
TraceContext trace_broadcast(Worker& w, const telemetry::SpanStart& handle,
                             std::string_view channel, size_t size);
// websocket.recovery: a Subscribe with "since", from the request to the
// Subscribed reply and the recovered messages; child of the handle span.
void trace_recovery(Worker& w, const Connection& c, const stream::Request& req,
                    std::string_view epoch, uint64_t offset, bool recovered, size_t messages);
// Publication completion hook: broadcast.recipients and websocket.fanout.
void on_publication_done(const pubsub::Publication& p, void* context);

}  // namespace wstrace::server
