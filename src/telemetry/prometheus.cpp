#include "telemetry/prometheus.h"

#include "util/json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

namespace wstrace::telemetry {

namespace {

bool name_char(char c, bool allow_colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         (allow_colon && c == ':');
}

std::string sanitize(std::string_view s, bool allow_colon) {
  std::string out;
  out.reserve(s.size() + 1);
  for (char c : s) {
    char d = name_char(c, allow_colon) ? c : '_';
    if (d == '_' && !out.empty() && out.back() == '_') {
      continue;
    }
    out.push_back(d);
  }
  if (out.empty() || (out[0] >= '0' && out[0] <= '9')) {
    out.insert(out.begin(), '_');
  }
  return out;
}

std::string unit_word(std::string_view u) {
  static constexpr std::pair<std::string_view, std::string_view> kUnits[] = {
      {"d", "days"},          {"h", "hours"},         {"min", "minutes"},
      {"s", "seconds"},       {"ms", "milliseconds"}, {"us", "microseconds"},
      {"ns", "nanoseconds"},  {"By", "bytes"},        {"KiBy", "kibibytes"},
      {"MiBy", "mebibytes"},  {"GiBy", "gibibytes"},  {"TiBy", "tibibytes"},
      {"KBy", "kilobytes"},   {"MBy", "megabytes"},   {"GBy", "gigabytes"},
      {"TBy", "terabytes"},   {"m", "meters"},        {"V", "volts"},
      {"A", "amperes"},       {"J", "joules"},        {"W", "watts"},
      {"g", "grams"},         {"Cel", "celsius"},     {"Hz", "hertz"},
      {"%", "percent"},
  };
  for (const auto& [k, v] : kUnits) {
    if (u == k) {
      return std::string(v);
    }
  }
  return sanitize(u, false);
}

std::string unit_suffix(std::string_view unit, MetricType type) {
  // Drop {annotations}.
  std::string u;
  int depth = 0;
  for (char c : unit) {
    if (c == '{') {
      ++depth;
    } else if (c == '}') {
      depth = depth ? depth - 1 : 0;
    } else if (!depth) {
      u.push_back(c);
    }
  }
  if (u.empty()) {
    return {};
  }
  if (u == "1") {
    return type == MetricType::Gauge ? "ratio" : "";
  }
  size_t slash = u.find('/');
  if (slash != std::string::npos) {
    std::string a = unit_word(std::string_view(u).substr(0, slash));
    std::string b = unit_word(std::string_view(u).substr(slash + 1));
    static constexpr std::pair<std::string_view, std::string_view> kPer[] = {
        {"seconds", "second"}, {"minutes", "minute"}, {"hours", "hour"}, {"days", "day"}};
    for (const auto& [pl, sg] : kPer) {
      if (b == pl) {
        b = sg;
      }
    }
    if (a.empty() || a == "_" || b.empty() || b == "_") {
      return {};
    }
    return a + "_per_" + b;
  }
  std::string w = unit_word(u);
  return w == "_" ? std::string() : w;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

void append_escaped(std::string& out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out.push_back(c);
    }
  }
}

void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  json::append_finite_double(out, v);
}

void append_int(std::string& out, int64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  out += buf;
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(v));
  out += buf;
}

void append_labels(std::string& out, const LabelSet& labels, std::string_view le = {}) {
  if (labels.empty() && le.empty()) {
    return;
  }
  out.push_back('{');
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) {
      out.push_back(',');
    }
    first = false;
    out += prometheus_label_name(k);
    out += "=\"";
    append_escaped(out, v, true);
    out.push_back('"');
  }
  if (!le.empty()) {
    if (!first) {
      out.push_back(',');
    }
    out += "le=\"";
    out += le;
    out.push_back('"');
  }
  out.push_back('}');
}

void append_header(std::string& out, const std::string& name, std::string_view help,
                   std::string_view type) {
  out += "# HELP ";
  out += name;
  out.push_back(' ');
  append_escaped(out, help, false);
  out += "\n# TYPE ";
  out += name;
  out.push_back(' ');
  out += type;
  out.push_back('\n');
}

}  // namespace

std::string prometheus_label_name(std::string_view key) {
  std::string s = sanitize(key, false);
  if (s[0] == '_' && !key.empty() && key[0] >= '0' && key[0] <= '9') {
    s = "key" + s;
  }
  return s;
}

namespace {

// Whether `name`'s '_'-separated words contain `words` (one or more words)
// as a run: the unit is then "already in the name" and not repeated.
bool has_words(std::string_view name, std::string_view words) {
  size_t pos = 0;
  while ((pos = name.find(words, pos)) != std::string_view::npos) {
    const bool start = pos == 0 || name[pos - 1] == '_';
    const size_t end = pos + words.size();
    if (start && (end == name.size() || name[end] == '_')) return true;
    ++pos;
  }
  return false;
}

// Prometheus reserves these suffixes for histogram and summary series.
bool reserved_suffix(std::string_view name) {
  return ends_with(name, "_count") || ends_with(name, "_sum") || ends_with(name, "_bucket");
}

}  // namespace

std::string prometheus_name(std::string_view otel_name, std::string_view unit, MetricType type,
                            bool monotonic) {
  std::string name = sanitize(otel_name, true);
  std::string suffix = unit_suffix(unit, type);
  // As the OpenTelemetry Collector's translator does: the unit is appended
  // unless the name already has it as a word (websocket.bytes.received, By
  // -> websocket_bytes_received_total).
  if (!suffix.empty() && !has_words(name, suffix)) {
    if (name.back() != '_') {
      name.push_back('_');
    }
    name += suffix;
  }
  if (type == MetricType::Sum && monotonic && !ends_with(name, "_total")) {
    name += "_total";
  }
  return name;
}

std::string prometheus_type(std::string_view prometheus_name, MetricType type, bool monotonic) {
  if (type == MetricType::Histogram) return "histogram";
  if (type == MetricType::Sum && monotonic) return "counter";
  // A gauge named like a histogram series (process.thread.count ->
  // process_thread_count) keeps its name, as the Collector does, and is
  // exposed untyped: Prometheus treats it as a gauge, and promtool's lint
  // (no "_count"/"_sum"/"_bucket" on a gauge) does not apply.
  return reserved_suffix(prometheus_name) ? "untyped" : "gauge";
}

std::string render_prometheus(const MetricsSnapshot& snap, const Resource* resource) {
  std::string out;
  out.reserve(snap.metrics.size() * 200);
  std::set<std::string> seen;
  for (const auto& m : snap.metrics) {
    if (m.points.empty()) {
      continue;
    }
    std::string name = prometheus_name(m.name, m.unit, m.type, m.monotonic);
    // A family name must be unique; a histogram also owns _bucket/_sum/_count.
    std::string base = name;
    if (m.type == MetricType::Sum && m.monotonic && ends_with(base, "_total")) {
      base.resize(base.size() - 6);
    }
    if (!seen.insert(base).second) {
      continue;
    }
    std::string_view help = m.description.empty() ? std::string_view(m.name) : m.description;
    switch (m.type) {
      case MetricType::Sum:
      case MetricType::Gauge: {
        append_header(out, name, help, prometheus_type(name, m.type, m.monotonic));
        for (const auto& p : m.points) {
          out += name;
          append_labels(out, p.labels);
          out.push_back(' ');
          if (p.type == Point::Type::Double) {
            append_number(out, p.as_double);
          } else {
            append_int(out, p.as_int);
          }
          out.push_back('\n');
        }
        break;
      }
      case MetricType::Histogram: {
        append_header(out, name, help, "histogram");
        for (const auto& p : m.points) {
          uint64_t cum = 0;
          for (size_t i = 0; i < m.bounds.size() && i < p.bucket_counts.size(); ++i) {
            cum += p.bucket_counts[i];
            std::string le;
            append_number(le, m.bounds[i]);
            out += name + "_bucket";
            append_labels(out, p.labels, le);
            out.push_back(' ');
            append_uint(out, cum);
            out.push_back('\n');
          }
          out += name + "_bucket";
          append_labels(out, p.labels, "+Inf");
          out.push_back(' ');
          append_uint(out, p.count);
          out.push_back('\n');
          out += name + "_sum";
          append_labels(out, p.labels);
          out.push_back(' ');
          append_number(out, p.sum);
          out.push_back('\n');
          out += name + "_count";
          append_labels(out, p.labels);
          out.push_back(' ');
          append_uint(out, p.count);
          out.push_back('\n');
        }
        break;
      }
    }
  }
  if (resource && !resource->attributes.empty() && !seen.count("target_info")) {
    append_header(out, "target_info", "Target metadata", "gauge");
    LabelSet labels;
    std::set<std::string> keys;
    for (const auto& a : resource->attributes) {
      std::string k = prometheus_label_name(a.key.view());
      if (!keys.insert(k).second) {
        continue;
      }
      std::string v;
      switch (a.value.index()) {
        case 0: v = std::get<0>(a.value) ? "true" : "false"; break;
        case 1: v = std::to_string(std::get<1>(a.value)); break;
        case 2: append_number(v, std::get<2>(a.value)); break;
        default: v = std::get<3>(a.value); break;
      }
      labels.emplace_back(std::move(k), std::move(v));
    }
    out += "target_info";
    append_labels(out, labels);
    out += " 1\n";
  }
  return out;
}

}  // namespace wstrace::telemetry
