#include "telemetry/sampler.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "util/log.h"

namespace wstrace::telemetry {

namespace {
constexpr uint64_t kMax56 = uint64_t{1} << 56;
}

uint64_t Sampler::ratio_threshold(double ratio) noexcept {
  if (!(ratio > 0)) {  // also NaN
    return kMax56;
  }
  if (ratio >= 1) {
    return 0;
  }
  double t = std::ceil((1.0 - ratio) * static_cast<double>(kMax56));
  return t >= static_cast<double>(kMax56) ? kMax56 - 1 : static_cast<uint64_t>(t);
}

bool Sampler::ratio_decision(const TraceId& trace_id, uint64_t threshold) noexcept {
  uint64_t r = 0;
  for (size_t i = 9; i < 16; ++i) {
    r = r << 8 | trace_id.bytes[i];
  }
  return r >= threshold;
}

Sampler::Sampler(Type t, double ratio) : type_(t) {
  if (!(ratio >= 0)) {
    ratio = 0;
  }
  ratio_ = ratio > 1 ? 1 : ratio;
  threshold_ = ratio_threshold(ratio_);
}

Sampler Sampler::parent_based(Type root, double ratio) {
  switch (root) {
    case Type::AlwaysOff:
    case Type::ParentBasedAlwaysOff:
      return Sampler(Type::ParentBasedAlwaysOff, 0.0);
    case Type::TraceIdRatio:
    case Type::ParentBasedTraceIdRatio:
      return Sampler(Type::ParentBasedTraceIdRatio, ratio);
    default:
      return Sampler(Type::ParentBasedAlwaysOn, 1.0);
  }
}

Sampler Sampler::from_env(const char* sampler, const char* arg) {
  std::string_view name = sampler ? sampler : "";
  double ratio = 1.0;
  bool uses_ratio = name == "traceidratio" || name == "parentbased_traceidratio";
  if (uses_ratio && arg && *arg) {
    char* end = nullptr;
    double v = std::strtod(arg, &end);
    if (end == arg || *end != '\0' || !(v >= 0 && v <= 1)) {
      WS_LOG(Warn, "OTEL_TRACES_SAMPLER_ARG is not a ratio in [0, 1]; using 1.0",
             {"value", arg});
    } else {
      ratio = v;
    }
  }
  if (name.empty() || name == "parentbased_always_on") {
    return Sampler();
  }
  if (name == "always_on") {
    return always_on();
  }
  if (name == "always_off") {
    return always_off();
  }
  if (name == "traceidratio") {
    return trace_id_ratio(ratio);
  }
  if (name == "parentbased_always_off") {
    return parent_based(Type::AlwaysOff);
  }
  if (name == "parentbased_traceidratio") {
    return parent_based(Type::TraceIdRatio, ratio);
  }
  WS_LOG(Warn, "unknown OTEL_TRACES_SAMPLER; using parentbased_always_on", {"value", name});
  return Sampler();
}

bool Sampler::should_sample(const SpanContext* parent, const TraceId& trace_id) const noexcept {
  switch (type_) {
    case Type::AlwaysOn: return true;
    case Type::AlwaysOff: return false;
    case Type::TraceIdRatio: return ratio_decision(trace_id, threshold_);
    default: break;
  }
  if (parent && parent->valid()) {
    // Parent-based: follow the parent's sampled flag, local or remote.
    return parent->sampled();
  }
  switch (type_) {
    case Type::ParentBasedAlwaysOff: return false;
    case Type::ParentBasedTraceIdRatio: return ratio_decision(trace_id, threshold_);
    default: return true;
  }
}

std::string Sampler::description() const {
  char buf[64];
  switch (type_) {
    case Type::AlwaysOn: return "AlwaysOnSampler";
    case Type::AlwaysOff: return "AlwaysOffSampler";
    case Type::TraceIdRatio:
      std::snprintf(buf, sizeof buf, "TraceIdRatioBased{%g}", ratio_);
      return buf;
    case Type::ParentBasedAlwaysOn: return "ParentBased{root=AlwaysOnSampler}";
    case Type::ParentBasedAlwaysOff: return "ParentBased{root=AlwaysOffSampler}";
    case Type::ParentBasedTraceIdRatio:
      std::snprintf(buf, sizeof buf, "ParentBased{root=TraceIdRatioBased{%g}}", ratio_);
      return buf;
  }
  return "?";
}

}  // namespace wstrace::telemetry
