// Telemetry configuration from the standard OTEL_* environment variables plus
// the overrides the server passes. A bad value logs a warning and falls back
// to the default; nothing here fails.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "telemetry/batch_processor.h"
#include "telemetry/otlp_encode.h"
#include "telemetry/otlp_http.h"
#include "telemetry/sampler.h"
#include "telemetry/span.h"

namespace wstrace::telemetry {

// Looks up an environment variable; null when unset. Defaults to getenv.
using EnvFn = std::function<const char*(const char*)>;

// What the server decides (flags, config file); the environment cannot override these.
struct TelemetryOptions {
  std::string service_version;  // service.version; also the scope version
  std::string node_id;          // service.instance.id (overrides OTEL_RESOURCE_ATTRIBUTES)
  bool tracing_enabled = true;
  bool metrics_enabled = true;
  size_t span_ring_size = 1000;  // recent spans kept for /api/traces; 0 = none
  EnvFn env;                     // tests inject; empty = getenv
};

struct TelemetryConfig {
  bool sdk_disabled = false;  // OTEL_SDK_DISABLED=true
  Resource resource;
  Scope scope;
  Sampler sampler;
  SpanLimits limits;
  BatchConfig bsp;
  std::optional<HttpConfig> traces;   // nullopt: no span exporter
  std::optional<HttpConfig> metrics;  // nullopt: no metric exporter
  uint64_t metric_export_interval_ms = 60000;  // OTEL_METRIC_EXPORT_INTERVAL
  uint64_t metric_export_timeout_ms = 30000;   // OTEL_METRIC_EXPORT_TIMEOUT
};

TelemetryConfig load_config(const TelemetryOptions& options);

// OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/traces" etc., without doubling the slash.
std::string join_signal_path(std::string_view base, std::string_view path);

}  // namespace wstrace::telemetry
