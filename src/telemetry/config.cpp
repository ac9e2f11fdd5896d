#include "telemetry/config.h"

#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "telemetry/env_parse.h"
#include "util/log.h"

#ifndef WSTRACE_VERSION
#define WSTRACE_VERSION "0.0.0"
#endif

namespace wstrace::telemetry {

namespace {

struct Env {
  const EnvFn& fn;
  // Set and non-empty (the spec treats an empty value as unset).
  const char* get(const char* name) const {
    const char* v = fn ? fn(name) : std::getenv(name);
    return v && *v ? v : nullptr;
  }
};

uint64_t env_uint(const Env& env, const char* name, uint64_t def, uint64_t min = 0,
                  uint64_t max = UINT64_MAX) {
  const char* v = env.get(name);
  if (!v) {
    return def;
  }
  auto n = parse_uint(v);
  if (!n || *n < min || *n > max) {
    WS_LOG(Warn, "invalid value of an OTEL variable; using the default", {"variable", name},
           {"value", v}, {"default", def});
    return def;
  }
  return *n;
}

std::optional<std::string> endpoint_url(const Env& env, const char* signal_var,
                                        std::string_view path) {
  std::string url;
  const char* name = signal_var;
  if (const char* v = env.get(signal_var)) {
    url = trim_blanks(v);
  } else if (const char* b = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")) {
    name = "OTEL_EXPORTER_OTLP_ENDPOINT";
    url = join_signal_path(trim_blanks(b), path);
  } else {
    return std::nullopt;
  }
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    WS_LOG(Warn, "OTLP endpoint is not an http:// or https:// URL; export disabled",
           {"variable", name}, {"value", url});
    return std::nullopt;
  }
  return url;
}

OtlpProtocol protocol(const Env& env, const char* signal_var) {
  const char* name = env.get(signal_var) ? signal_var : "OTEL_EXPORTER_OTLP_PROTOCOL";
  const char* v = env.get(name);
  if (!v) {
    return OtlpProtocol::HttpProtobuf;
  }
  std::string_view p = trim_blanks(v);
  if (p == "http/protobuf") {
    return OtlpProtocol::HttpProtobuf;
  }
  if (p == "http/json") {
    return OtlpProtocol::HttpJson;
  }
  WS_LOG(Warn, "unsupported OTLP protocol (only http/protobuf and http/json); using http/protobuf",
         {"variable", name}, {"value", p});
  return OtlpProtocol::HttpProtobuf;
}

KeyValueList headers(const Env& env, const char* signal_var) {
  KeyValueList out;
  for (const char* name : {"OTEL_EXPORTER_OTLP_HEADERS", signal_var}) {
    const char* v = env.get(name);
    if (!v) {
      continue;
    }
    auto list = parse_key_value_list(v);
    if (!list) {
      WS_LOG(Warn, "malformed OTLP headers variable ignored (expected k=v,k2=v2)",
             {"variable", name});
      continue;
    }
    for (auto& kv : *list) {
      const std::string& k = kv.first;
      const std::string& val = kv.second;
      bool bad = false;
      for (char c : k + val) {
        if (c == '\r' || c == '\n' || c == '\0') {
          bad = true;
        }
      }
      if (bad || k.find(':') != std::string::npos) {
        WS_LOG(Warn, "OTLP header with a forbidden character ignored", {"variable", name});
        continue;
      }
      std::erase_if(out, [&](const auto& e) { return e.first == k; });  // signal overrides
      out.push_back(std::move(kv));
    }
  }
  return out;
}

std::optional<HttpConfig> signal_config(const Env& env, const char* exporter_var,
                                        const char* endpoint_var, const char* protocol_var,
                                        const char* headers_var, const char* timeout_var,
                                        std::string_view path) {
  if (const char* e = env.get(exporter_var)) {
    std::string_view ex = trim_blanks(e);
    if (ex == "none") {
      return std::nullopt;
    }
    if (ex != "otlp") {
      WS_LOG(Warn, "unsupported exporter (only otlp and none); using otlp",
             {"variable", exporter_var}, {"value", ex});
    }
  }
  auto url = endpoint_url(env, endpoint_var, path);
  if (!url) {
    return std::nullopt;
  }
  HttpConfig h;
  h.url = *url;
  h.protocol = protocol(env, protocol_var);
  h.headers = headers(env, headers_var);
  uint64_t general = env_uint(env, "OTEL_EXPORTER_OTLP_TIMEOUT", 10000, 1, 3'600'000);
  h.timeout_ms = env_uint(env, timeout_var, general, 1, 3'600'000);
  return h;
}

std::string host_name() {
  char buf[HOST_NAME_MAX + 1] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) {
    return {};
  }
  return buf;
}

}  // namespace

std::string join_signal_path(std::string_view base, std::string_view path) {
  std::string url(base);
  while (!url.empty() && url.back() == '/') {
    url.pop_back();
  }
  return url + std::string(path);
}

TelemetryConfig load_config(const TelemetryOptions& options) {
  Env env{options.env};
  TelemetryConfig c;

  if (const char* v = env.get("OTEL_SDK_DISABLED")) {
    auto b = parse_bool(v);
    if (!b) {
      WS_LOG(Warn, "OTEL_SDK_DISABLED is not true/false; using false", {"value", v});
    }
    c.sdk_disabled = b.value_or(false);
  }

  // Resource: OTEL_RESOURCE_ATTRIBUTES, then what we know better.
  Attributes& ra = c.resource.attributes;
  if (const char* v = env.get("OTEL_RESOURCE_ATTRIBUTES")) {
    if (auto list = parse_key_value_list(v)) {
      for (auto& [k, val] : *list) {
        set_attribute(ra, Attribute(Text(std::move(k)), std::move(val)));
      }
    } else {
      WS_LOG(Warn, "malformed OTEL_RESOURCE_ATTRIBUTES ignored (expected k=v,k2=v2, "
                   "percent-encoded)");
    }
  }
  if (const char* v = env.get("OTEL_SERVICE_NAME")) {
    set_attribute(ra, Attribute("service.name", std::string(trim_blanks(v))));
  } else if (!c.resource.find("service.name")) {
    set_attribute(ra, Attribute("service.name", "wstrace"));
  }
  if (!options.service_version.empty()) {
    set_attribute(ra, Attribute("service.version", options.service_version));
  }
  if (!options.node_id.empty()) {
    set_attribute(ra, Attribute("service.instance.id", options.node_id));
  }
  if (!c.resource.find("host.name")) {
    std::string h = host_name();
    if (!h.empty()) {
      set_attribute(ra, Attribute("host.name", h));
    }
  }
  set_attribute(ra, Attribute("telemetry.sdk.name", "wstrace"));
  set_attribute(ra, Attribute("telemetry.sdk.language", "cpp"));
  set_attribute(ra, Attribute("telemetry.sdk.version", WSTRACE_VERSION));
  c.scope.name = "wstrace";
  c.scope.version = options.service_version.empty() ? WSTRACE_VERSION : options.service_version;

  c.sampler = Sampler::from_env(env.get("OTEL_TRACES_SAMPLER"), env.get("OTEL_TRACES_SAMPLER_ARG"));

  uint64_t attr_count = env_uint(env, "OTEL_ATTRIBUTE_COUNT_LIMIT", 128, 0, UINT32_MAX);
  uint64_t value_len = env_uint(env, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", UINT32_MAX, 0, UINT32_MAX);
  c.limits.attribute_count =
      static_cast<uint32_t>(env_uint(env, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", attr_count, 0, UINT32_MAX));
  c.limits.attribute_value_length = static_cast<uint32_t>(
      env_uint(env, "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", value_len, 0, UINT32_MAX));
  c.limits.event_count =
      static_cast<uint32_t>(env_uint(env, "OTEL_SPAN_EVENT_COUNT_LIMIT", 128, 0, UINT32_MAX));
  c.limits.link_count =
      static_cast<uint32_t>(env_uint(env, "OTEL_SPAN_LINK_COUNT_LIMIT", 128, 0, UINT32_MAX));
  c.limits.attributes_per_event =
      static_cast<uint32_t>(env_uint(env, "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", attr_count, 0, UINT32_MAX));
  c.limits.attributes_per_link =
      static_cast<uint32_t>(env_uint(env, "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", attr_count, 0, UINT32_MAX));

  c.bsp.max_queue_size = env_uint(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1, 1 << 24);
  c.bsp.schedule_delay_ms = env_uint(env, "OTEL_BSP_SCHEDULE_DELAY", 5000, 1, 3'600'000);
  c.bsp.max_export_batch_size = env_uint(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1, 1 << 24);
  if (c.bsp.max_export_batch_size > c.bsp.max_queue_size) {
    WS_LOG(Warn, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE exceeds OTEL_BSP_MAX_QUEUE_SIZE; using the queue size");
    c.bsp.max_export_batch_size = c.bsp.max_queue_size;
  }
  c.bsp.export_timeout_ms = env_uint(env, "OTEL_BSP_EXPORT_TIMEOUT", 30000, 1, 3'600'000);

  c.metric_export_interval_ms = env_uint(env, "OTEL_METRIC_EXPORT_INTERVAL", 60000, 1, 86'400'000);
  c.metric_export_timeout_ms = env_uint(env, "OTEL_METRIC_EXPORT_TIMEOUT", 30000, 1, 3'600'000);

  if (!c.sdk_disabled && options.tracing_enabled) {
    c.traces = signal_config(env, "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                             "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                             "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "/v1/traces");
  }
  if (!c.sdk_disabled && options.metrics_enabled) {
    c.metrics = signal_config(env, "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                              "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
                              "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
                              "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "/v1/metrics");
  }
  return c;
}

}  // namespace wstrace::telemetry
