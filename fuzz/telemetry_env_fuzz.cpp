// libFuzzer target: the string-valued OTEL_* variables — the k=v lists of
// OTEL_RESOURCE_ATTRIBUTES / OTEL_EXPORTER_OTLP_HEADERS (percent-decoded),
// integers and booleans — and the resource built from them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "telemetry/config.h"
#include "telemetry/env_parse.h"
#include "util/log.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  wstrace::log::configure(wstrace::log::Level::Off, wstrace::log::Format::Text);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wstrace::telemetry;
  std::string in(reinterpret_cast<const char*>(data), size);
  if (auto list = parse_key_value_list(in)) {
    for (const auto& [k, v] : *list) {
      if (k.empty()) {
        std::abort();
      }
    }
  }
  if (auto d = percent_decode(in); d && d->size() > in.size()) {
    std::abort();
  }
  (void)parse_uint(in);
  (void)parse_bool(in);
  // Whole configuration from hostile values (no NUL inside a C string).
  std::string value = in.substr(0, in.find('\0'));
  TelemetryOptions o;
  o.env = [&value](const char* name) -> const char* {
    std::string_view n(name);
    if (n == "OTEL_RESOURCE_ATTRIBUTES" || n == "OTEL_EXPORTER_OTLP_HEADERS" ||
        n == "OTEL_TRACES_SAMPLER_ARG" || n == "OTEL_BSP_MAX_QUEUE_SIZE" ||
        n == "OTEL_EXPORTER_OTLP_ENDPOINT") {
      return value.c_str();
    }
    return nullptr;
  };
  TelemetryConfig c = load_config(o);
  if (!c.resource.find("service.name")) {
    std::abort();
  }
  return 0;
}
