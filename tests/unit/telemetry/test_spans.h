// A fixed set of spans used by the encoder tests.
#pragma once

#include "telemetry/span.h"

namespace wstrace::telemetry::testing {

inline SpanData sample_span() {
  SpanData s;
  s.trace_id = *TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736");
  s.span_id = *SpanId::from_hex("00f067aa0ba902b7");
  s.parent_span_id = *SpanId::from_hex("1111111111111111");
  s.trace_flags = kFlagSampled;
  s.parent_remote = true;
  s.trace_state = "congo=t61rcWkgMzE";
  s.name = "websocket.connection";
  s.kind = SpanKind::Server;
  s.start_unix_ns = 1700000000000000000ull;
  s.end_unix_ns = 1700000001500000000ull;
  s.set("websocket.close.code", 1000)
      .set("network.peer.address", "127.0.0.1")
      .set("ok", true)
      .set("ratio", 0.5)
      .set("negative", int64_t{-5});
  s.add_event("websocket.heartbeat.timeout", 1700000001000000000ull, {{"missed", 2}});
  SpanContext link;
  link.trace_id = *TraceId::from_hex("0af7651916cd43dd8448eb211c80319c");
  link.span_id = *SpanId::from_hex("b7ad6b7169203331");
  link.trace_flags = kFlagSampled;
  s.add_link(link, {{"link.kind", "connection"}});
  s.set_status(StatusCode::Error, "heartbeat timeout");
  s.dropped_attributes_count = 3;
  return s;
}

}  // namespace wstrace::telemetry::testing
