#include "telemetry/metric_reader.h"

#include <algorithm>
#include <chrono>

#include "util/clock.h"
#include "util/log.h"
#include "util/thread_name.h"

namespace wstrace::telemetry {

namespace {
std::chrono::steady_clock::time_point to_steady(uint64_t mono) {
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(mono));
}
}  // namespace

PeriodicMetricReader::PeriodicMetricReader(const MetricRegistry& registry,
                                           std::unique_ptr<MetricExporter> exporter,
                                           uint64_t interval_ms, uint64_t timeout_ms)
    : registry_(registry),
      exporter_(std::move(exporter)),
      interval_ms_(std::max<uint64_t>(1, interval_ms)),
      timeout_ms_(std::max<uint64_t>(1, timeout_ms)) {}

PeriodicMetricReader::~PeriodicMetricReader() { shutdown(mono_ns() + 1'000'000'000ull); }

void PeriodicMetricReader::start() {
  if (!thread_.joinable() && exporter_) {
    thread_ = std::thread([this] {
      name_this_thread("ws-otlp-metrics");
      run();
    });
  }
}

bool PeriodicMetricReader::export_once(uint64_t deadline) {
  MetricsSnapshot snap = registry_.collect();
  uint64_t points = 0;
  for (const auto& m : snap.metrics) points += m.points.size();
  bool ok = exporter_->export_metrics(snap, deadline) == ExportResult::Success;
  (ok ? exports_ : failures_).fetch_add(1, std::memory_order_relaxed);
  (ok ? points_exported_ : points_failed_).fetch_add(points, std::memory_order_relaxed);
  return ok;
}

void PeriodicMetricReader::run() {
  auto next = std::chrono::steady_clock::now() + std::chrono::milliseconds(interval_ms_);
  for (;;) {
    uint64_t flush_target;
    bool stopping;
    uint64_t deadline;
    {
      std::unique_lock lock(mu_);
      wake_.wait_until(lock, next, [&] { return stop_ || flush_requested_ > flush_done_; });
      flush_target = flush_requested_;
      stopping = stop_;
      deadline = std::min<uint64_t>(mono_ns() + timeout_ms_ * 1'000'000ull,
                                    stopping ? stop_deadline_ : UINT64_MAX);
    }
    bool timer = std::chrono::steady_clock::now() >= next;
    bool ok = true;
    if (stopping || flush_target > flush_done_ || timer) {
      ok = export_once(deadline);
    }
    if (timer) {
      next = std::chrono::steady_clock::now() + std::chrono::milliseconds(interval_ms_);
    }
    std::lock_guard lock(mu_);
    last_ok_ = ok;
    flush_done_ = flush_target;
    done_.notify_all();
    if (stopping) {
      finished_ = true;
      return;
    }
  }
}

bool PeriodicMetricReader::force_flush(uint64_t deadline_mono_ns) {
  if (!thread_.joinable()) {
    return false;
  }
  std::unique_lock lock(mu_);
  uint64_t target = ++flush_requested_;
  wake_.notify_all();
  bool done = done_.wait_until(lock, to_steady(deadline_mono_ns),
                               [&] { return flush_done_ >= target || finished_; });
  return done && last_ok_;
}

void PeriodicMetricReader::shutdown(uint64_t deadline_mono_ns) {
  if (!thread_.joinable()) {
    return;
  }
  bool finished;
  {
    std::unique_lock lock(mu_);
    stop_ = true;
    stop_deadline_ = deadline_mono_ns;
    wake_.notify_all();
    finished = done_.wait_until(lock, to_steady(deadline_mono_ns), [&] { return finished_; });
  }
  if (!finished) {
    WS_LOG(Warn, "final metric export did not finish by the shutdown deadline; cancelling it");
    exporter_->cancel();
  }
  thread_.join();
}

}  // namespace wstrace::telemetry
