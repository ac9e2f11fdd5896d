// The finished-span record and its parts: attributes, events, links, status,
// and the limits applied to them. A record is built once, when the span ends
// (long-lived spans keep only a SpanStart until then, see tracer.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "telemetry/trace_context.h"

namespace wstrace::telemetry {

// Values match OTLP's Span.SpanKind.
enum class SpanKind : uint8_t { Internal = 1, Server = 2, Client = 3, Producer = 4, Consumer = 5 };
// Values match OTLP's Status.StatusCode.
enum class StatusCode : uint8_t { Unset = 0, Ok = 1, Error = 2 };

const char* to_string(SpanKind kind);      // "SERVER", ...
const char* to_string(StatusCode code);    // "UNSET", "OK", "ERROR"

// A string that is either a literal with static storage (no allocation: span
// names and attribute keys are almost always literals) or an owned copy.
class Text {
 public:
  Text() = default;
  template <size_t N>
  consteval Text(const char (&s)[N]) : ptr_(s), len_(N - 1) {}  // NOLINT: implicit on purpose
  Text(std::string s)  // NOLINT: implicit on purpose
      : owned_(std::make_shared<const std::string>(std::move(s))) {}
  // The caller promises `s` outlives every copy of this Text (e.g. a
  // `static constexpr std::string_view`).
  static Text literal(std::string_view s) {
    Text t;
    t.ptr_ = s.data();
    t.len_ = s.size();
    return t;
  }
  static Text copy(std::string_view s) { return Text(std::string(s)); }

  std::string_view view() const {
    return ptr_ ? std::string_view(ptr_, len_) : owned_ ? std::string_view(*owned_) : std::string_view();
  }
  bool empty() const { return view().empty(); }
  friend bool operator==(const Text& a, const Text& b) { return a.view() == b.view(); }

 private:
  const char* ptr_ = nullptr;
  size_t len_ = 0;
  std::shared_ptr<const std::string> owned_;  // null for literals (copies share it)
};

using AttrValue = std::variant<bool, int64_t, double, std::string>;

template <typename T>
AttrValue to_attr_value(T&& v) {
  using D = std::decay_t<T>;
  if constexpr (std::is_same_v<D, bool>) {
    return AttrValue(std::in_place_index<0>, v);
  } else if constexpr (std::is_integral_v<D>) {
    return AttrValue(std::in_place_index<1>, static_cast<int64_t>(v));
  } else if constexpr (std::is_floating_point_v<D>) {
    return AttrValue(std::in_place_index<2>, static_cast<double>(v));
  } else if constexpr (std::is_same_v<D, AttrValue>) {
    return AttrValue(std::forward<T>(v));
  } else {
    return AttrValue(std::in_place_index<3>, std::string(std::string_view(v)));
  }
}

struct Attribute {
  Attribute() = default;
  template <typename T>
  Attribute(Text k, T&& v) : key(std::move(k)), value(to_attr_value(std::forward<T>(v))) {}

  Text key;
  AttrValue value;
};

using Attributes = std::vector<Attribute>;

// Sets key to value, replacing an existing entry with the same key.
void set_attribute(Attributes& attrs, Attribute attr);

struct Event {
  Text name;
  uint64_t time_unix_ns = 0;
  Attributes attributes;
  uint32_t dropped_attributes_count = 0;
};

struct Link {
  SpanContext context;
  Attributes attributes;
  uint32_t dropped_attributes_count = 0;
};

struct Status {
  StatusCode code = StatusCode::Unset;
  std::string message;  // only meaningful with Error
};

// Limits per the OTEL_*_LIMIT variables (defaults 128; value length unlimited).
struct SpanLimits {
  uint32_t attribute_count = 128;
  uint32_t event_count = 128;
  uint32_t link_count = 128;
  uint32_t attributes_per_event = 128;
  uint32_t attributes_per_link = 128;
  uint32_t attribute_value_length = UINT32_MAX;
};

struct SpanData {
  TraceId trace_id;
  SpanId span_id;
  SpanId parent_span_id;  // all zero for a root span
  uint8_t trace_flags = 0;
  bool parent_remote = false;
  std::string trace_state;

  Text name;
  SpanKind kind = SpanKind::Internal;
  uint64_t start_unix_ns = 0;
  uint64_t end_unix_ns = 0;

  Attributes attributes;
  std::vector<Event> events;
  std::vector<Link> links;
  Status status;

  uint32_t dropped_attributes_count = 0;
  uint32_t dropped_events_count = 0;
  uint32_t dropped_links_count = 0;

  template <typename T>
  SpanData& set(Text key, T&& value) {
    set_attribute(attributes, Attribute(std::move(key), std::forward<T>(value)));
    return *this;
  }
  SpanData& add_event(Text event_name, uint64_t time_unix_ns, Attributes attrs = {});
  SpanData& add_link(const SpanContext& ctx, Attributes attrs = {});
  SpanData& set_status(StatusCode code, std::string message = {});

  bool sampled() const { return (trace_flags & kFlagSampled) != 0; }
  SpanContext context() const;
};

using SpanPtr = std::shared_ptr<const SpanData>;

// Truncates to the limits, adding to the dropped counts.
void apply_limits(SpanData& span, const SpanLimits& limits);

}  // namespace wstrace::telemetry
