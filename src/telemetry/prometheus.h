// Prometheus text exposition format 0.0.4 from a metrics snapshot, with the
// usual OpenTelemetry-to-Prometheus translation:
//   * name: characters outside [a-zA-Z0-9_:] become '_' (dots included),
//     repeated '_' collapse;
//   * unit suffix from the UCUM unit: s -> _seconds, By -> _bytes, ms ->
//     _milliseconds, "1" on a gauge -> _ratio, "{...}" annotations -> none,
//     a/b -> a_per_b; not added when the name already has it as a word
//     (websocket.bytes.sent -> websocket_bytes_sent_total), as the
//     OpenTelemetry Collector's translator does;
//   * monotonic sums are counters with _total; non-monotonic sums and gauges
//     are gauges, except that one whose name ends in _count/_sum/_bucket
//     (reserved for histograms) is exposed untyped under its own name;
//     histograms give _bucket{le=...} (cumulative, with +Inf), _sum and _count;
//   * label names sanitised the same way, values escaped (\\, \", \n).
// Every family gets # HELP and # TYPE. Passes `promtool check metrics`.
#pragma once

#include <string>
#include <string_view>

#include "telemetry/metrics.h"
#include "telemetry/otlp_encode.h"

namespace wstrace::telemetry {

std::string prometheus_name(std::string_view otel_name, std::string_view unit, MetricType type,
                            bool monotonic);
// The # TYPE of a metric with that Prometheus name: counter, gauge,
// histogram, or untyped for a gauge whose name ends in _count, _sum or
// _bucket (reserved for histogram series; see prometheus.cpp).
std::string prometheus_type(std::string_view prometheus_name, MetricType type, bool monotonic);
std::string prometheus_label_name(std::string_view key);

// `resource` non-null adds a target_info gauge carrying the resource attributes.
std::string render_prometheus(const MetricsSnapshot& snapshot, const Resource* resource = nullptr);

inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace wstrace::telemetry
