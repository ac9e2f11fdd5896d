// The tracer: head sampling, ids, and the end of a span's life (limits, the
// recent-spans ring, the batch processor). Never null: a default-constructed
// Tracer (or OTEL_SDK_DISABLED=true) is a no-op whose calls cost a branch.
//
// Long-lived spans stay compact: keep a SpanStart (48 bytes: ids, start time,
// sampled bit) per connection and build the SpanData record only when the
// span ends:
//
//   SpanStart conn = tracer.start(&upgrade_ctx);                 // at open
//   ...
//   if (tracer.will_export(conn, /*force=*/abnormal)) {           // at close
//     SpanData d = tracer.record(conn, "websocket.connection", SpanKind::Server);
//     d.set("websocket.close.code", 1006).set_status(StatusCode::Error, "timeout");
//     tracer.end(std::move(d), 0, /*force=*/abnormal);
//   }
//
// `force` exports a span that head sampling dropped (its trace flags still say
// not sampled; its ids exist since they are always generated). Check
// will_export() before building a record: with the SDK disabled it is false
// even for a sampled parent, so a disabled tracer costs a branch.
#pragma once

#include <atomic>
#include <cstdint>

#include "telemetry/sampler.h"
#include "telemetry/span.h"
#include "telemetry/trace_context.h"

namespace wstrace::telemetry {

class BatchSpanProcessor;
class SpanRing;

struct SpanStart {
  TraceId trace_id;
  SpanId span_id;
  SpanId parent_span_id;  // zero for a root
  uint64_t start_unix_ns = 0;
  uint8_t trace_flags = 0;
  bool parent_remote = false;

  bool sampled() const { return (trace_flags & kFlagSampled) != 0; }
  bool valid() const { return trace_id.valid() && span_id.valid(); }
  // The context to propagate to children (traceparent, Redis envelope).
  SpanContext context() const;
};
static_assert(sizeof(SpanStart) <= 48, "SpanStart is kept per connection: keep it compact");

class Tracer {
 public:
  Tracer() = default;  // disabled (no-op)
  Tracer(Sampler sampler, SpanLimits limits, SpanRing* ring, BatchSpanProcessor* processor);
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  bool enabled() const { return enabled_; }

  // Decides sampling and assigns ids. `parent` may be null or invalid (a new
  // trace). start_unix_ns 0 = now. Disabled: no ids are generated; a valid
  // parent's context is passed through so propagation still works.
  SpanStart start(const SpanContext* parent, uint64_t start_unix_ns = 0) const noexcept;

  // A root span of a new trace whose sampling decision is made as if
  // `decision_parent` were its parent: the parent-based samplers inherit its
  // sampled flag, the others decide on the new trace id as for any root.
  // Nothing else of `decision_parent` is kept (no parent id; link it if it
  // matters). Used for a message that carries no traceparent of its own: it
  // follows its connection's decision.
  SpanStart start_root_decided_by(const SpanContext& decision_parent,
                                  uint64_t start_unix_ns = 0) const noexcept;

  // True when end() would keep the span: enabled, and sampled or forced.
  bool will_export(const SpanStart& s, bool force = false) const {
    return enabled_ && (s.sampled() || force) && s.valid();
  }

  // The record of a span begun with start(): ids, flags, start time, name, kind.
  SpanData record(const SpanStart& start, Text name, SpanKind kind) const;

  // Ends a span: end time (0 = now), limits, ring, exporter queue. Spans not
  // sampled are discarded unless `force`. Never blocks.
  void end(SpanData&& span, uint64_t end_unix_ns = 0, bool force = false) noexcept;

  const Sampler& sampler() const { return sampler_; }
  // Spans ended and kept: sampled, and not sampled but forced (exported
  // anyway: recorded only, in sampling terms).
  uint64_t spans_ended() const { return ended_.load(std::memory_order_relaxed) + spans_ended_unsampled(); }
  uint64_t spans_ended_unsampled() const { return ended_unsampled_.load(std::memory_order_relaxed); }

 private:
  bool enabled_ = false;
  Sampler sampler_;
  SpanLimits limits_;
  SpanRing* ring_ = nullptr;
  BatchSpanProcessor* processor_ = nullptr;
  std::atomic<uint64_t> ended_{0};           // sampled
  std::atomic<uint64_t> ended_unsampled_{0};  // forced
};

}  // namespace wstrace::telemetry
