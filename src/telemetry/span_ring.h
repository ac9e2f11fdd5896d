// The ring of recently finished spans behind the admin API's /api/traces, so
// a user with no collector still sees traces. push() is lock-free.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "telemetry/span.h"

namespace wstrace::telemetry {

class SpanRing {
 public:
  explicit SpanRing(size_t capacity);  // 0 disables the ring
  SpanRing(const SpanRing&) = delete;
  SpanRing& operator=(const SpanRing&) = delete;

  void push(SpanPtr span) noexcept;
  // Newest (latest end time) first, optionally only one trace, at most `limit`.
  std::vector<SpanPtr> recent(const std::optional<TraceId>& trace_id = std::nullopt,
                              size_t limit = SIZE_MAX) const;
  size_t capacity() const { return capacity_; }

 private:
  size_t capacity_;
  std::unique_ptr<std::atomic<SpanPtr>[]> slots_;
  std::atomic<uint64_t> next_{0};
};

// {"spans":[{...}, ...]} with ids in lowercase hex, times as unix ns
// integers, duration_ms, kind/status as strings, attributes as an object.
std::string render_spans_json(const std::vector<SpanPtr>& spans);

// For the admin API: `trace_id` is a hex filter ("" = all traces; an invalid
// id yields no spans), `limit` 0 = the whole ring.
std::string render_recent_spans_json(const SpanRing& ring, std::string_view trace_id_hex,
                                     size_t limit);

}  // namespace wstrace::telemetry
