#include "telemetry/otlp_encode.h"

#include "telemetry/json_writer.h"
#include "telemetry/protobuf_writer.h"

namespace wstrace::telemetry {

const AttrValue* Resource::find(std::string_view key) const {
  for (const auto& a : attributes) {
    if (a.key.view() == key) {
      return &a.value;
    }
  }
  return nullptr;
}

namespace {

// ---- field numbers (opentelemetry-proto v1) ----
namespace common {
constexpr uint32_t kAnyString = 1, kAnyBool = 2, kAnyInt = 3, kAnyDouble = 4;
constexpr uint32_t kKvKey = 1, kKvValue = 2;
constexpr uint32_t kScopeName = 1, kScopeVersion = 2;
constexpr uint32_t kResourceAttributes = 1;
}  // namespace common
namespace trace {
constexpr uint32_t kRequestResourceSpans = 1;
constexpr uint32_t kResourceSpansResource = 1, kResourceSpansScopeSpans = 2;
constexpr uint32_t kScopeSpansScope = 1, kScopeSpansSpans = 2;
constexpr uint32_t kTraceId = 1, kSpanId = 2, kTraceState = 3, kParentSpanId = 4, kName = 5,
                   kKind = 6, kStart = 7, kEnd = 8, kAttributes = 9, kDroppedAttributes = 10,
                   kEvents = 11, kDroppedEvents = 12, kLinks = 13, kDroppedLinks = 14,
                   kStatus = 15, kFlags = 16;
constexpr uint32_t kEventTime = 1, kEventName = 2, kEventAttributes = 3, kEventDropped = 4;
constexpr uint32_t kLinkTraceId = 1, kLinkSpanId = 2, kLinkTraceState = 3, kLinkAttributes = 4,
                   kLinkDropped = 5, kLinkFlags = 6;
constexpr uint32_t kStatusMessage = 2, kStatusCode = 3;
}  // namespace trace
namespace metrics {
constexpr uint32_t kRequestResourceMetrics = 1;
constexpr uint32_t kResourceMetricsResource = 1, kResourceMetricsScopeMetrics = 2;
constexpr uint32_t kScopeMetricsScope = 1, kScopeMetricsMetrics = 2;
constexpr uint32_t kName = 1, kDescription = 2, kUnit = 3, kGauge = 5, kSum = 7, kHistogram = 9;
constexpr uint32_t kDataPoints = 1, kTemporality = 2, kMonotonic = 3;
constexpr uint32_t kNumAttributes = 7, kNumStart = 2, kNumTime = 3, kNumDouble = 4, kNumInt = 6;
constexpr uint32_t kHistAttributes = 9, kHistStart = 2, kHistTime = 3, kHistCount = 4,
                   kHistSum = 5, kHistBuckets = 6, kHistBounds = 7, kHistMin = 11, kHistMax = 12;
constexpr uint64_t kCumulative = 2;
}  // namespace metrics

uint32_t span_flags(uint8_t trace_flags, bool remote) {
  return (trace_flags & 0xffu) | kSpanFlagsContextHasIsRemote |
         (remote ? kSpanFlagsContextIsRemote : 0u);
}

// ---------------------------------------------------------------- protobuf

void pb_any(proto::Writer& w, uint32_t field, const AttrValue& v) {
  size_t m = w.begin(field);
  switch (v.index()) {
    case 0: w.bool_field(common::kAnyBool, std::get<0>(v)); break;
    case 1: w.int64_field(common::kAnyInt, std::get<1>(v)); break;
    case 2: w.double_field(common::kAnyDouble, std::get<2>(v)); break;
    default: w.string_field(common::kAnyString, std::get<3>(v)); break;
  }
  w.end(m);
}

void pb_kv(proto::Writer& w, uint32_t field, std::string_view key, const AttrValue& v) {
  size_t m = w.begin(field);
  w.string_field(common::kKvKey, key);
  pb_any(w, common::kKvValue, v);
  w.end(m);
}

void pb_attributes(proto::Writer& w, uint32_t field, const Attributes& attrs) {
  for (const auto& a : attrs) {
    pb_kv(w, field, a.key.view(), a.value);
  }
}

void pb_labels(proto::Writer& w, uint32_t field, const LabelSet& labels) {
  for (const auto& [k, v] : labels) {
    size_t m = w.begin(field);
    w.string_field(common::kKvKey, k);
    size_t a = w.begin(common::kKvValue);
    w.string_field(common::kAnyString, v);
    w.end(a);
    w.end(m);
  }
}

void pb_resource(proto::Writer& w, uint32_t field, const Resource& r) {
  size_t m = w.begin(field);
  pb_attributes(w, common::kResourceAttributes, r.attributes);
  w.end(m);
}

void pb_scope(proto::Writer& w, uint32_t field, const Scope& s) {
  size_t m = w.begin(field);
  w.string_field(common::kScopeName, s.name);
  if (!s.version.empty()) {
    w.string_field(common::kScopeVersion, s.version);
  }
  w.end(m);
}

void pb_span(proto::Writer& w, const SpanData& s) {
  using namespace trace;
  size_t m = w.begin(kScopeSpansSpans);
  w.bytes_field(kTraceId, s.trace_id.bytes.data(), 16);
  w.bytes_field(kSpanId, s.span_id.bytes.data(), 8);
  if (!s.trace_state.empty()) {
    w.string_field(kTraceState, s.trace_state);
  }
  if (s.parent_span_id.valid()) {
    w.bytes_field(kParentSpanId, s.parent_span_id.bytes.data(), 8);
  }
  w.string_field(kName, s.name.view());
  w.uint64_field(kKind, static_cast<uint64_t>(s.kind));
  w.fixed64_field(kStart, s.start_unix_ns);
  w.fixed64_field(kEnd, s.end_unix_ns);
  pb_attributes(w, kAttributes, s.attributes);
  if (s.dropped_attributes_count) {
    w.uint64_field(kDroppedAttributes, s.dropped_attributes_count);
  }
  for (const auto& e : s.events) {
    size_t em = w.begin(kEvents);
    w.fixed64_field(kEventTime, e.time_unix_ns);
    w.string_field(kEventName, e.name.view());
    pb_attributes(w, kEventAttributes, e.attributes);
    if (e.dropped_attributes_count) {
      w.uint64_field(kEventDropped, e.dropped_attributes_count);
    }
    w.end(em);
  }
  if (s.dropped_events_count) {
    w.uint64_field(kDroppedEvents, s.dropped_events_count);
  }
  for (const auto& l : s.links) {
    size_t lm = w.begin(kLinks);
    w.bytes_field(kLinkTraceId, l.context.trace_id.bytes.data(), 16);
    w.bytes_field(kLinkSpanId, l.context.span_id.bytes.data(), 8);
    if (!l.context.trace_state.empty()) {
      w.string_field(kLinkTraceState, l.context.trace_state);
    }
    pb_attributes(w, kLinkAttributes, l.attributes);
    if (l.dropped_attributes_count) {
      w.uint64_field(kLinkDropped, l.dropped_attributes_count);
    }
    w.fixed32_field(kLinkFlags, span_flags(l.context.trace_flags, l.context.remote));
    w.end(lm);
  }
  if (s.dropped_links_count) {
    w.uint64_field(kDroppedLinks, s.dropped_links_count);
  }
  if (s.status.code != StatusCode::Unset) {
    size_t sm = w.begin(kStatus);
    if (!s.status.message.empty()) {
      w.string_field(kStatusMessage, s.status.message);
    }
    w.uint64_field(kStatusCode, static_cast<uint64_t>(s.status.code));
    w.end(sm);
  }
  w.fixed32_field(kFlags, span_flags(s.trace_flags, s.parent_remote));
  w.end(m);
}

void pb_number_point(proto::Writer& w, const Point& p, uint64_t start, uint64_t time,
                     bool with_start) {
  using namespace metrics;
  size_t m = w.begin(kDataPoints);
  pb_labels(w, kNumAttributes, p.labels);
  if (with_start) {
    w.fixed64_field(kNumStart, start);
  }
  w.fixed64_field(kNumTime, time);
  if (p.type == Point::Type::Double) {
    w.double_field(kNumDouble, p.as_double);
  } else {
    w.sfixed64_field(kNumInt, p.as_int);
  }
  w.end(m);
}

void pb_histogram_point(proto::Writer& w, const Point& p, const std::vector<double>& bounds,
                        uint64_t start, uint64_t time) {
  using namespace metrics;
  size_t m = w.begin(kDataPoints);
  pb_labels(w, kHistAttributes, p.labels);
  w.fixed64_field(kHistStart, start);
  w.fixed64_field(kHistTime, time);
  w.fixed64_field(kHistCount, p.count);
  w.double_field(kHistSum, p.sum);
  size_t b = w.begin(kHistBuckets);  // packed fixed64
  for (uint64_t c : p.bucket_counts) {
    w.raw64(c);
  }
  w.end(b);
  if (!bounds.empty()) {
    size_t e = w.begin(kHistBounds);  // packed double
    for (double d : bounds) {
      w.raw64(std::bit_cast<uint64_t>(d));
    }
    w.end(e);
  }
  if (p.count) {
    w.double_field(kHistMin, p.min);
    w.double_field(kHistMax, p.max);
  }
  w.end(m);
}

void pb_metric(proto::Writer& w, const MetricData& md, uint64_t start, uint64_t time) {
  using namespace metrics;
  size_t m = w.begin(kScopeMetricsMetrics);
  w.string_field(kName, md.name);
  if (!md.description.empty()) {
    w.string_field(kDescription, md.description);
  }
  if (!md.unit.empty()) {
    w.string_field(kUnit, md.unit);
  }
  switch (md.type) {
    case MetricType::Gauge: {
      size_t g = w.begin(kGauge);
      for (const auto& p : md.points) {
        pb_number_point(w, p, start, time, false);
      }
      w.end(g);
      break;
    }
    case MetricType::Sum: {
      size_t s = w.begin(kSum);
      for (const auto& p : md.points) {
        pb_number_point(w, p, start, time, true);
      }
      w.uint64_field(kTemporality, kCumulative);
      if (md.monotonic) {
        w.bool_field(kMonotonic, true);
      }
      w.end(s);
      break;
    }
    case MetricType::Histogram: {
      size_t h = w.begin(kHistogram);
      for (const auto& p : md.points) {
        pb_histogram_point(w, p, md.bounds, start, time);
      }
      w.uint64_field(kTemporality, kCumulative);
      w.end(h);
      break;
    }
  }
  w.end(m);
}

// -------------------------------------------------------------------- JSON

void js_key(std::string& out, std::string_view key) {
  json::append_string(out, key);
  out.push_back(':');
}

void js_any(std::string& out, const AttrValue& v) {
  out.push_back('{');
  switch (v.index()) {
    case 0:
      js_key(out, "boolValue");
      out += std::get<0>(v) ? "true" : "false";
      break;
    case 1:
      js_key(out, "intValue");
      json::append_int_string(out, std::get<1>(v));
      break;
    case 2:
      js_key(out, "doubleValue");
      json::append_double(out, std::get<2>(v));
      break;
    default:
      js_key(out, "stringValue");
      json::append_string(out, std::get<3>(v));
      break;
  }
  out.push_back('}');
}

void js_attributes(std::string& out, const Attributes& attrs) {
  out.push_back('[');
  for (size_t i = 0; i < attrs.size(); ++i) {
    out += i ? ",{" : "{";
    js_key(out, "key");
    json::append_string(out, attrs[i].key.view());
    out.push_back(',');
    js_key(out, "value");
    js_any(out, attrs[i].value);
    out.push_back('}');
  }
  out.push_back(']');
}

void js_labels(std::string& out, const LabelSet& labels) {
  out.push_back('[');
  for (size_t i = 0; i < labels.size(); ++i) {
    out += i ? ",{" : "{";
    js_key(out, "key");
    json::append_string(out, labels[i].first);
    out += ",\"value\":{\"stringValue\":";
    json::append_string(out, labels[i].second);
    out += "}}";
  }
  out.push_back(']');
}

void js_resource_and_scope_open(std::string& out, const Resource& r, const Scope& s,
                                std::string_view scope_list, std::string_view item_list) {
  out += "{\"resource\":{\"attributes\":";
  js_attributes(out, r.attributes);
  out += "},";
  js_key(out, scope_list);
  out += "[{\"scope\":{\"name\":";
  json::append_string(out, s.name);
  if (!s.version.empty()) {
    out += ",\"version\":";
    json::append_string(out, s.version);
  }
  out += "},";
  js_key(out, item_list);
  out.push_back('[');
}

void js_hex_field(std::string& out, std::string_view key, const std::string& hex) {
  js_key(out, key);
  out.push_back('"');
  out += hex;
  out.push_back('"');
}

void js_span(std::string& out, const SpanData& s) {
  out.push_back('{');
  js_hex_field(out, "traceId", s.trace_id.hex());
  out.push_back(',');
  js_hex_field(out, "spanId", s.span_id.hex());
  if (!s.trace_state.empty()) {
    out += ",\"traceState\":";
    json::append_string(out, s.trace_state);
  }
  if (s.parent_span_id.valid()) {
    out.push_back(',');
    js_hex_field(out, "parentSpanId", s.parent_span_id.hex());
  }
  out += ",\"flags\":";
  json::append_uint(out, span_flags(s.trace_flags, s.parent_remote));
  out += ",\"name\":";
  json::append_string(out, s.name.view());
  out += ",\"kind\":";
  json::append_uint(out, static_cast<uint64_t>(s.kind));
  out += ",\"startTimeUnixNano\":";
  json::append_uint_string(out, s.start_unix_ns);
  out += ",\"endTimeUnixNano\":";
  json::append_uint_string(out, s.end_unix_ns);
  out += ",\"attributes\":";
  js_attributes(out, s.attributes);
  if (s.dropped_attributes_count) {
    out += ",\"droppedAttributesCount\":";
    json::append_uint(out, s.dropped_attributes_count);
  }
  out += ",\"events\":[";
  for (size_t i = 0; i < s.events.size(); ++i) {
    const Event& e = s.events[i];
    out += i ? ",{" : "{";
    out += "\"timeUnixNano\":";
    json::append_uint_string(out, e.time_unix_ns);
    out += ",\"name\":";
    json::append_string(out, e.name.view());
    out += ",\"attributes\":";
    js_attributes(out, e.attributes);
    if (e.dropped_attributes_count) {
      out += ",\"droppedAttributesCount\":";
      json::append_uint(out, e.dropped_attributes_count);
    }
    out.push_back('}');
  }
  out.push_back(']');
  if (s.dropped_events_count) {
    out += ",\"droppedEventsCount\":";
    json::append_uint(out, s.dropped_events_count);
  }
  out += ",\"links\":[";
  for (size_t i = 0; i < s.links.size(); ++i) {
    const Link& l = s.links[i];
    out += i ? ",{" : "{";
    js_hex_field(out, "traceId", l.context.trace_id.hex());
    out.push_back(',');
    js_hex_field(out, "spanId", l.context.span_id.hex());
    if (!l.context.trace_state.empty()) {
      out += ",\"traceState\":";
      json::append_string(out, l.context.trace_state);
    }
    out += ",\"attributes\":";
    js_attributes(out, l.attributes);
    if (l.dropped_attributes_count) {
      out += ",\"droppedAttributesCount\":";
      json::append_uint(out, l.dropped_attributes_count);
    }
    out += ",\"flags\":";
    json::append_uint(out, span_flags(l.context.trace_flags, l.context.remote));
    out.push_back('}');
  }
  out.push_back(']');
  if (s.dropped_links_count) {
    out += ",\"droppedLinksCount\":";
    json::append_uint(out, s.dropped_links_count);
  }
  out += ",\"status\":{";
  if (s.status.code != StatusCode::Unset) {
    if (!s.status.message.empty()) {
      out += "\"message\":";
      json::append_string(out, s.status.message);
      out.push_back(',');
    }
    out += "\"code\":";
    json::append_uint(out, static_cast<uint64_t>(s.status.code));
  }
  out += "}}";
}

void js_number_point(std::string& out, const Point& p, uint64_t start, uint64_t time,
                     bool with_start) {
  out += "{\"attributes\":";
  js_labels(out, p.labels);
  if (with_start) {
    out += ",\"startTimeUnixNano\":";
    json::append_uint_string(out, start);
  }
  out += ",\"timeUnixNano\":";
  json::append_uint_string(out, time);
  if (p.type == Point::Type::Double) {
    out += ",\"asDouble\":";
    json::append_double(out, p.as_double);
  } else {
    out += ",\"asInt\":";
    json::append_int_string(out, p.as_int);
  }
  out.push_back('}');
}

void js_histogram_point(std::string& out, const Point& p, const std::vector<double>& bounds,
                        uint64_t start, uint64_t time) {
  out += "{\"attributes\":";
  js_labels(out, p.labels);
  out += ",\"startTimeUnixNano\":";
  json::append_uint_string(out, start);
  out += ",\"timeUnixNano\":";
  json::append_uint_string(out, time);
  out += ",\"count\":";
  json::append_uint_string(out, p.count);
  out += ",\"sum\":";
  json::append_double(out, p.sum);
  out += ",\"bucketCounts\":[";
  for (size_t i = 0; i < p.bucket_counts.size(); ++i) {
    if (i) {
      out.push_back(',');
    }
    json::append_uint_string(out, p.bucket_counts[i]);
  }
  out += "],\"explicitBounds\":[";
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (i) {
      out.push_back(',');
    }
    json::append_double(out, bounds[i]);
  }
  out.push_back(']');
  if (p.count) {
    out += ",\"min\":";
    json::append_double(out, p.min);
    out += ",\"max\":";
    json::append_double(out, p.max);
  }
  out.push_back('}');
}

void js_metric(std::string& out, const MetricData& md, uint64_t start, uint64_t time) {
  out += "{\"name\":";
  json::append_string(out, md.name);
  out += ",\"description\":";
  json::append_string(out, md.description);
  out += ",\"unit\":";
  json::append_string(out, md.unit);
  out.push_back(',');
  const char* kind = md.type == MetricType::Gauge ? "gauge"
                     : md.type == MetricType::Sum ? "sum"
                                                  : "histogram";
  js_key(out, kind);
  out += "{\"dataPoints\":[";
  for (size_t i = 0; i < md.points.size(); ++i) {
    if (i) {
      out.push_back(',');
    }
    if (md.type == MetricType::Histogram) {
      js_histogram_point(out, md.points[i], md.bounds, start, time);
    } else {
      js_number_point(out, md.points[i], start, time, md.type == MetricType::Sum);
    }
  }
  out.push_back(']');
  if (md.type != MetricType::Gauge) {
    out += ",\"aggregationTemporality\":2";
  }
  if (md.type == MetricType::Sum) {
    out += md.monotonic ? ",\"isMonotonic\":true" : ",\"isMonotonic\":false";
  }
  out += "}}";
}

}  // namespace

std::string encode_traces_protobuf(const Resource& resource, const Scope& scope,
                                   const std::vector<SpanPtr>& spans) {
  std::string out;
  out.reserve(256 + spans.size() * 256);
  proto::Writer w(out);
  size_t rs = w.begin(trace::kRequestResourceSpans);
  pb_resource(w, trace::kResourceSpansResource, resource);
  size_t ss = w.begin(trace::kResourceSpansScopeSpans);
  pb_scope(w, trace::kScopeSpansScope, scope);
  for (const auto& s : spans) {
    pb_span(w, *s);
  }
  w.end(ss);
  w.end(rs);
  return out;
}

std::string encode_traces_json(const Resource& resource, const Scope& scope,
                               const std::vector<SpanPtr>& spans) {
  std::string out = "{\"resourceSpans\":[";
  js_resource_and_scope_open(out, resource, scope, "scopeSpans", "spans");
  for (size_t i = 0; i < spans.size(); ++i) {
    if (i) {
      out.push_back(',');
    }
    js_span(out, *spans[i]);
  }
  out += "]}]}]}";
  return out;
}

std::string encode_metrics_protobuf(const Resource& resource, const Scope& scope,
                                    const MetricsSnapshot& snap) {
  std::string out;
  proto::Writer w(out);
  size_t rm = w.begin(metrics::kRequestResourceMetrics);
  pb_resource(w, metrics::kResourceMetricsResource, resource);
  size_t sm = w.begin(metrics::kResourceMetricsScopeMetrics);
  pb_scope(w, metrics::kScopeMetricsScope, scope);
  for (const auto& md : snap.metrics) {
    if (!md.points.empty()) {
      pb_metric(w, md, snap.start_unix_ns, snap.time_unix_ns);
    }
  }
  w.end(sm);
  w.end(rm);
  return out;
}

std::string encode_metrics_json(const Resource& resource, const Scope& scope,
                                const MetricsSnapshot& snap) {
  std::string out = "{\"resourceMetrics\":[";
  js_resource_and_scope_open(out, resource, scope, "scopeMetrics", "metrics");
  bool first = true;
  for (const auto& md : snap.metrics) {
    if (md.points.empty()) {
      continue;
    }
    if (!first) {
      out.push_back(',');
    }
    first = false;
    js_metric(out, md, snap.start_unix_ns, snap.time_unix_ns);
  }
  out += "]}]}]}";
  return out;
}

}  // namespace wstrace::telemetry
