// The ring of recently finished spans behind the admin API's /api/traces, so
// a user with no collector still sees traces.
//
// What push() costs (it runs on network threads, for every kept span): one
// relaxed fetch_add on the shared index, then a store into one slot, a
// std::atomic<std::shared_ptr>. That is NOT lock-free in libstdc++ 12
// (is_lock_free() is false): each slot is guarded by a spin lock in the low
// bit of its control-block pointer, held only for a pointer swap; a push
// spins only while another thread (a concurrent push that wrapped onto the
// same slot, or recent() copying that slot) holds it, which is rare and
// short, and never blocks in the kernel. Once the ring is full, the push also
// drops the slot's previous span: if the export queue has already let go of
// it, that is the last reference, and the old SpanData (its attribute
// strings and vectors) is destroyed and freed on the pushing thread.
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
// integers, duration_ms, kind/status as strings, attributes as an object;
// with `node`, each span also says which node recorded it ("node":"<id>").
std::string render_spans_json(const std::vector<SpanPtr>& spans, std::string_view node = {});
// {"key":value,...} and [{"name","time_unix_nano","attributes"},...], as in those spans.
void append_attributes_json(std::string& out, const Attributes& attrs);
void append_events_json(std::string& out, const std::vector<Event>& events);

// For the admin API: `trace_id` is a hex filter ("" = all traces; an invalid
// id yields no spans), `limit` 0 = the whole ring.
std::string render_recent_spans_json(const SpanRing& ring, std::string_view trace_id_hex,
                                     size_t limit, std::string_view node = {});

}  // namespace wstrace::telemetry
