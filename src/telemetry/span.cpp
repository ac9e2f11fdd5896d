#include "telemetry/span.h"

namespace wstrace::telemetry {

const char* to_string(SpanKind kind) {
  switch (kind) {
    case SpanKind::Internal: return "INTERNAL";
    case SpanKind::Server: return "SERVER";
    case SpanKind::Client: return "CLIENT";
    case SpanKind::Producer: return "PRODUCER";
    case SpanKind::Consumer: return "CONSUMER";
  }
  return "INTERNAL";
}

const char* to_string(StatusCode code) {
  switch (code) {
    case StatusCode::Unset: return "UNSET";
    case StatusCode::Ok: return "OK";
    case StatusCode::Error: return "ERROR";
  }
  return "UNSET";
}

void set_attribute(Attributes& attrs, Attribute attr) {
  std::string_view k = attr.key.view();
  for (auto& a : attrs) {
    if (a.key.view() == k) {
      a.value = std::move(attr.value);
      return;
    }
  }
  attrs.push_back(std::move(attr));
}

SpanData& SpanData::add_event(Text event_name, uint64_t time_unix_ns, Attributes attrs) {
  events.push_back(Event{std::move(event_name), time_unix_ns, std::move(attrs), 0});
  return *this;
}

SpanData& SpanData::add_link(const SpanContext& ctx, Attributes attrs) {
  links.push_back(Link{ctx, std::move(attrs), 0});
  return *this;
}

SpanData& SpanData::set_status(StatusCode code, std::string message) {
  status.code = code;
  status.message = code == StatusCode::Error ? std::move(message) : std::string();
  return *this;
}

SpanContext SpanData::context() const {
  SpanContext c;
  c.trace_id = trace_id;
  c.span_id = span_id;
  c.trace_flags = trace_flags;
  c.trace_state = trace_state;
  return c;
}

namespace {

void limit_attributes(Attributes& attrs, uint32_t max_count, uint32_t max_len, uint32_t& dropped) {
  if (attrs.size() > max_count) {
    dropped += static_cast<uint32_t>(attrs.size() - max_count);
    attrs.resize(max_count);
  }
  if (max_len != UINT32_MAX) {
    for (auto& a : attrs) {
      if (auto* s = std::get_if<std::string>(&a.value); s && s->size() > max_len) {
        size_t n = max_len;
        // Cut on a UTF-8 character boundary: never leave a partial sequence.
        while (n > 0 && (static_cast<unsigned char>((*s)[n]) & 0xC0) == 0x80) {
          --n;
        }
        s->resize(n);
      }
    }
  }
}

}  // namespace

void apply_limits(SpanData& span, const SpanLimits& l) {
  limit_attributes(span.attributes, l.attribute_count, l.attribute_value_length,
                   span.dropped_attributes_count);
  if (span.events.size() > l.event_count) {
    span.dropped_events_count += static_cast<uint32_t>(span.events.size() - l.event_count);
    span.events.resize(l.event_count);
  }
  for (auto& e : span.events) {
    limit_attributes(e.attributes, l.attributes_per_event, l.attribute_value_length,
                     e.dropped_attributes_count);
  }
  if (span.links.size() > l.link_count) {
    span.dropped_links_count += static_cast<uint32_t>(span.links.size() - l.link_count);
    span.links.resize(l.link_count);
  }
  for (auto& k : span.links) {
    limit_attributes(k.attributes, l.attributes_per_link, l.attribute_value_length,
                     k.dropped_attributes_count);
  }
}

}  // namespace wstrace::telemetry
