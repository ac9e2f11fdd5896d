// Head samplers of OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG. A value
// type (no virtual call) since it runs for every new span.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "telemetry/trace_context.h"

namespace wstrace::telemetry {

class Sampler {
 public:
  enum class Type : uint8_t {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio,
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio,
  };

  Sampler() = default;  // parentbased_always_on, the OpenTelemetry default
  static Sampler always_on() { return Sampler(Type::AlwaysOn, 1.0); }
  static Sampler always_off() { return Sampler(Type::AlwaysOff, 0.0); }
  static Sampler trace_id_ratio(double ratio) { return Sampler(Type::TraceIdRatio, ratio); }
  static Sampler parent_based(Type root, double ratio = 1.0);

  // From the two variables' values (either may be null). An unknown sampler
  // or a bad ratio logs a warning and falls back (default sampler; ratio 1.0).
  static Sampler from_env(const char* sampler, const char* arg);

  // The decision for a new span of trace `trace_id` whose parent is `parent`
  // (null or invalid: a root span).
  bool should_sample(const SpanContext* parent, const TraceId& trace_id) const noexcept;

  Type type() const { return type_; }
  double ratio() const { return ratio_; }
  std::string description() const;

  // TraceIdRatio decision alone: the trace id's least significant 56 bits as a
  // random value R; sampled when R >= (1 - ratio) * 2^56. Deterministic, and a
  // trace sampled at some ratio is sampled at every higher ratio.
  static bool ratio_decision(const TraceId& trace_id, uint64_t threshold) noexcept;
  static uint64_t ratio_threshold(double ratio) noexcept;

 private:
  Sampler(Type t, double ratio);
  Type type_ = Type::ParentBasedAlwaysOn;
  double ratio_ = 1.0;
  uint64_t threshold_ = 0;  // sampled when R >= threshold_; 2^56 = never
};

}  // namespace wstrace::telemetry
