// Minimal JSON output helpers shared by the OTLP/JSON encoder and the admin
// renderers.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "util/json.h"

namespace wstrace::telemetry::json {

inline void append_string(std::string& out, std::string_view s) { ::wstrace::json::append_string(out, s); }

inline void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  int n = std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(v));
  out.append(buf, static_cast<size_t>(n));
}

inline void append_int(std::string& out, int64_t v) {
  char buf[24];
  int n = std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  out.append(buf, static_cast<size_t>(n));
}

// 64-bit integers as decimal strings (OTLP/JSON, proto3 JSON mapping).
inline void append_uint_string(std::string& out, uint64_t v) {
  out.push_back('"');
  append_uint(out, v);
  out.push_back('"');
}
inline void append_int_string(std::string& out, int64_t v) {
  out.push_back('"');
  append_int(out, v);
  out.push_back('"');
}

// Shortest round-trip form; non-finite values as the proto3 JSON strings
// "NaN", "Infinity", "-Infinity".
inline void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "\"NaN\"";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
    return;
  }
  ::wstrace::json::append_finite_double(out, v);
}

}  // namespace wstrace::telemetry::json
