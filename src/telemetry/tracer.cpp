#include "telemetry/tracer.h"

#include "telemetry/batch_processor.h"
#include "telemetry/span_ring.h"
#include "util/clock.h"

namespace wstrace::telemetry {

SpanContext SpanStart::context() const {
  SpanContext c;
  c.trace_id = trace_id;
  c.span_id = span_id;
  c.trace_flags = trace_flags;
  return c;
}

Tracer::Tracer(Sampler sampler, SpanLimits limits, SpanRing* ring, BatchSpanProcessor* processor)
    : enabled_(true), sampler_(sampler), limits_(limits), ring_(ring), processor_(processor) {}

SpanStart Tracer::start(const SpanContext* parent, uint64_t start_unix_ns) const noexcept {
  SpanStart s;
  bool has_parent = parent && parent->valid();
  if (!enabled_) {
    if (has_parent) {
      s.trace_id = parent->trace_id;
      s.span_id = parent->span_id;
      s.trace_flags = parent->trace_flags & kFlagSampled;
    }
    return s;
  }
  if (has_parent) {
    s.trace_id = parent->trace_id;
    s.parent_span_id = parent->span_id;
    s.parent_remote = parent->remote;
  } else {
    s.trace_id = new_trace_id();
  }
  s.span_id = new_span_id();
  s.trace_flags = sampler_.should_sample(parent, s.trace_id) ? kFlagSampled : 0;
  s.start_unix_ns = start_unix_ns ? start_unix_ns : unix_ns();
  return s;
}

SpanStart Tracer::start_root_decided_by(const SpanContext& decision_parent,
                                        uint64_t start_unix_ns) const noexcept {
  if (!enabled_) return {};
  SpanStart s;
  s.trace_id = new_trace_id();
  s.span_id = new_span_id();
  s.trace_flags = sampler_.should_sample(&decision_parent, s.trace_id) ? kFlagSampled : 0;
  s.start_unix_ns = start_unix_ns ? start_unix_ns : unix_ns();
  return s;
}

SpanData Tracer::record(const SpanStart& start, Text name, SpanKind kind) const {
  SpanData d;
  d.trace_id = start.trace_id;
  d.span_id = start.span_id;
  d.parent_span_id = start.parent_span_id;
  d.trace_flags = start.trace_flags;
  d.parent_remote = start.parent_remote;
  d.name = std::move(name);
  d.kind = kind;
  d.start_unix_ns = start.start_unix_ns;
  d.attributes.reserve(8);
  return d;
}

void Tracer::end(SpanData&& span, uint64_t end_unix_ns, bool force) noexcept {
  if (!enabled_ || !(span.sampled() || force) || !span.trace_id.valid() || !span.span_id.valid()) {
    return;
  }
  span.end_unix_ns = end_unix_ns ? end_unix_ns : unix_ns();
  if (span.end_unix_ns < span.start_unix_ns) {
    span.end_unix_ns = span.start_unix_ns;
  }
  apply_limits(span, limits_);
  // The record may live on in the ring and the export queue: no spare capacity.
  span.attributes.shrink_to_fit();
  span.events.shrink_to_fit();
  span.links.shrink_to_fit();
  (span.sampled() ? ended_ : ended_unsampled_).fetch_add(1, std::memory_order_relaxed);
  SpanPtr p;
  try {
    p = std::make_shared<const SpanData>(std::move(span));
  } catch (...) {
    return;  // out of memory: drop the span, never throw into the caller
  }
  if (processor_) {
    processor_->submit(p);
  }
  if (ring_) {
    ring_->push(std::move(p));
  }
}

}  // namespace wstrace::telemetry
