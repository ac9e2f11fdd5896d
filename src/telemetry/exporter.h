// Exporter interfaces. Exporters run on a background thread, never on a
// network thread; they return a result and never throw.
#pragma once

#include <cstdint>
#include <vector>

#include "telemetry/metrics.h"
#include "telemetry/span.h"

namespace wstrace::telemetry {

enum class ExportResult : uint8_t {
  Success,
  Failure,  // gave up (after retries, or not retryable): the data is dropped
};

class SpanExporter {
 public:
  virtual ~SpanExporter() = default;
  // Called from one thread at a time. Must return by deadline_mono_ns (a
  // util/clock.h mono_ns() value), or soon after cancel().
  virtual ExportResult export_spans(const std::vector<SpanPtr>& batch,
                                    uint64_t deadline_mono_ns) noexcept = 0;
  // From another thread: make a running or later export return promptly.
  virtual void cancel() noexcept {}
};

class MetricExporter {
 public:
  virtual ~MetricExporter() = default;
  virtual ExportResult export_metrics(const MetricsSnapshot& snapshot,
                                      uint64_t deadline_mono_ns) noexcept = 0;
  virtual void cancel() noexcept {}
};

}  // namespace wstrace::telemetry
