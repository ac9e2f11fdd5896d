#include "telemetry/span_ring.h"

#include <algorithm>

#include "telemetry/json_writer.h"

namespace wstrace::telemetry {

SpanRing::SpanRing(size_t capacity)
    : capacity_(capacity),
      slots_(capacity ? std::make_unique<std::atomic<SpanPtr>[]>(capacity) : nullptr) {}

void SpanRing::push(SpanPtr span) noexcept {
  if (capacity_ == 0) {
    return;
  }
  uint64_t i = next_.fetch_add(1, std::memory_order_relaxed);
  // A per-slot spin lock in libstdc++ 12 (see span_ring.h); the displaced
  // span is released here, after the lock, possibly freeing it.
  slots_[i % capacity_].store(std::move(span), std::memory_order_release);
}

std::vector<SpanPtr> SpanRing::recent(const std::optional<TraceId>& trace_id, size_t limit) const {
  std::vector<SpanPtr> out;
  for (size_t i = 0; i < capacity_; ++i) {
    SpanPtr s = slots_[i].load(std::memory_order_acquire);
    if (s && (!trace_id || s->trace_id == *trace_id)) {
      out.push_back(std::move(s));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const SpanPtr& a, const SpanPtr& b) {
    return a->end_unix_ns > b->end_unix_ns;
  });
  if (out.size() > limit) {
    out.resize(limit);
  }
  return out;
}

namespace {

void append_value(std::string& out, const AttrValue& v) {
  switch (v.index()) {
    case 0: out += std::get<0>(v) ? "true" : "false"; break;
    case 1: json::append_int(out, std::get<1>(v)); break;
    case 2: {
      double d = std::get<2>(v);
      json::append_double(out, d);
      break;
    }
    default: json::append_string(out, std::get<3>(v)); break;
  }
}

void append_attributes(std::string& out, const Attributes& attrs) {
  out.push_back('{');
  bool first = true;
  for (const auto& a : attrs) {
    if (!first) {
      out.push_back(',');
    }
    first = false;
    json::append_string(out, a.key.view());
    out.push_back(':');
    append_value(out, a.value);
  }
  out.push_back('}');
}

}  // namespace

void append_attributes_json(std::string& out, const Attributes& attrs) { append_attributes(out, attrs); }

void append_events_json(std::string& out, const std::vector<Event>& events) {
  out.push_back('[');
  for (size_t i = 0; i < events.size(); ++i) {
    const Event& e = events[i];
    out += i ? ",{\"name\":" : "{\"name\":";
    json::append_string(out, e.name.view());
    out += ",\"time_unix_nano\":";
    json::append_uint(out, e.time_unix_ns);
    out += ",\"attributes\":";
    append_attributes(out, e.attributes);
    out.push_back('}');
  }
  out.push_back(']');
}

std::string render_spans_json(const std::vector<SpanPtr>& spans, std::string_view node) {
  std::string out = "{\"spans\":[";
  bool first = true;
  for (const auto& sp : spans) {
    const SpanData& s = *sp;
    if (!first) {
      out.push_back(',');
    }
    first = false;
    out += "{\"trace_id\":\"" + s.trace_id.hex() + "\",\"span_id\":\"" + s.span_id.hex() + "\"";
    if (!node.empty()) {
      out += ",\"node\":";
      json::append_string(out, node);
    }
    out += ",\"parent_span_id\":";
    if (s.parent_span_id.valid()) {
      out += "\"" + s.parent_span_id.hex() + "\"";
    } else {
      out += "null";
    }
    out += ",\"name\":";
    json::append_string(out, s.name.view());
    out += ",\"kind\":\"";
    out += to_string(s.kind);
    out += "\",\"sampled\":";
    out += s.sampled() ? "true" : "false";
    out += ",\"start_unix_nano\":";
    json::append_uint(out, s.start_unix_ns);
    out += ",\"end_unix_nano\":";
    json::append_uint(out, s.end_unix_ns);
    out += ",\"duration_ms\":";
    json::append_double(
        out, s.end_unix_ns >= s.start_unix_ns ? (s.end_unix_ns - s.start_unix_ns) / 1e6 : 0.0);
    out += ",\"status\":{\"code\":\"";
    out += to_string(s.status.code);
    out += "\"";
    if (!s.status.message.empty()) {
      out += ",\"message\":";
      json::append_string(out, s.status.message);
    }
    out += "},\"attributes\":";
    append_attributes(out, s.attributes);
    out += ",\"events\":";
    append_events_json(out, s.events);
    out += ",\"links\":[";
    for (size_t i = 0; i < s.links.size(); ++i) {
      const Link& l = s.links[i];
      out += i ? ",{" : "{";
      out += "\"trace_id\":\"" + l.context.trace_id.hex() + "\",\"span_id\":\"" +
             l.context.span_id.hex() + "\",\"attributes\":";
      append_attributes(out, l.attributes);
      out.push_back('}');
    }
    out += "]}";
  }
  out += "]}";
  return out;
}

std::string render_recent_spans_json(const SpanRing& ring, std::string_view trace_id_hex,
                                     size_t limit, std::string_view node) {
  std::optional<TraceId> filter;
  if (!trace_id_hex.empty()) {
    filter = TraceId::from_hex(trace_id_hex);
    if (!filter) {
      return "{\"spans\":[]}";
    }
  }
  return render_spans_json(ring.recent(filter, limit ? limit : SIZE_MAX), node);
}

}  // namespace wstrace::telemetry
