// Periodic metric export (OTEL_METRIC_EXPORT_INTERVAL): a background thread
// collects the registry and exports cumulative data; a final export runs at
// shutdown.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "telemetry/exporter.h"
#include "telemetry/metrics.h"

namespace wstrace::telemetry {

class PeriodicMetricReader {
 public:
  PeriodicMetricReader(const MetricRegistry& registry, std::unique_ptr<MetricExporter> exporter,
                       uint64_t interval_ms, uint64_t timeout_ms);
  ~PeriodicMetricReader();
  PeriodicMetricReader(const PeriodicMetricReader&) = delete;
  PeriodicMetricReader& operator=(const PeriodicMetricReader&) = delete;

  void start();
  // Exports now; true when the export succeeded by the deadline.
  bool force_flush(uint64_t deadline_mono_ns);
  // Final export (bounded by the deadline), then stops the thread.
  void shutdown(uint64_t deadline_mono_ns);

  uint64_t exports() const { return exports_.load(std::memory_order_relaxed); }
  uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }
  // Data points of the successful / failed exports.
  uint64_t points_exported() const { return points_exported_.load(std::memory_order_relaxed); }
  uint64_t points_failed() const { return points_failed_.load(std::memory_order_relaxed); }

 private:
  void run();
  bool export_once(uint64_t deadline_mono_ns);

  const MetricRegistry& registry_;
  std::unique_ptr<MetricExporter> exporter_;
  uint64_t interval_ms_;
  uint64_t timeout_ms_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_;
  bool stop_ = false;
  bool finished_ = false;
  uint64_t stop_deadline_ = 0;
  uint64_t flush_requested_ = 0;
  uint64_t flush_done_ = 0;
  bool last_ok_ = false;
  std::atomic<uint64_t> exports_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<uint64_t> points_exported_{0};
  std::atomic<uint64_t> points_failed_{0};
  std::thread thread_;
};

}  // namespace wstrace::telemetry
