// OTLP request bodies, by hand: ExportTraceServiceRequest and
// ExportMetricsServiceRequest in protobuf binary and in OTLP/JSON (ids as hex,
// enums as integers, 64-bit integers as strings). Field numbers follow
// opentelemetry-proto common/resource/trace/metrics v1.
#pragma once

#include <string>
#include <vector>

#include "telemetry/metrics.h"
#include "telemetry/span.h"

namespace wstrace::telemetry {

struct Resource {
  Attributes attributes;
  const AttrValue* find(std::string_view key) const;
};

struct Scope {
  std::string name = "wstrace";
  std::string version;
};

// Span.flags / Link.flags bits besides the W3C trace flags.
inline constexpr uint32_t kSpanFlagsContextHasIsRemote = 0x100;
inline constexpr uint32_t kSpanFlagsContextIsRemote = 0x200;

std::string encode_traces_protobuf(const Resource& resource, const Scope& scope,
                                   const std::vector<SpanPtr>& spans);
std::string encode_traces_json(const Resource& resource, const Scope& scope,
                               const std::vector<SpanPtr>& spans);

std::string encode_metrics_protobuf(const Resource& resource, const Scope& scope,
                                    const MetricsSnapshot& snapshot);
std::string encode_metrics_json(const Resource& resource, const Scope& scope,
                                const MetricsSnapshot& snapshot);

}  // namespace wstrace::telemetry
