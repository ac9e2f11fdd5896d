#include "telemetry/batch_processor.h"

#include <algorithm>
#include <chrono>

#include "util/clock.h"
#include "util/log.h"
#include "util/thread_name.h"

namespace wstrace::telemetry {

namespace {

// mono_ns() reads CLOCK_MONOTONIC, which is what steady_clock uses on Linux.
std::chrono::steady_clock::time_point to_steady(uint64_t mono) {
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(mono));
}

BatchConfig sanitize(BatchConfig c) {
  c.max_queue_size = std::max<size_t>(1, c.max_queue_size);
  c.max_export_batch_size = std::clamp<size_t>(c.max_export_batch_size, 1, c.max_queue_size);
  c.schedule_delay_ms = std::max<uint64_t>(1, c.schedule_delay_ms);
  c.export_timeout_ms = std::max<uint64_t>(1, c.export_timeout_ms);
  return c;
}

}  // namespace

BatchSpanProcessor::BatchSpanProcessor(BatchConfig config, std::unique_ptr<SpanExporter> exporter)
    : config_(sanitize(config)), exporter_(std::move(exporter)), queue_(config_.max_queue_size) {}

BatchSpanProcessor::~BatchSpanProcessor() { shutdown(mono_ns() + 1'000'000'000ull); }

void BatchSpanProcessor::start() {
  if (!thread_.joinable() && exporter_) {
    thread_ = std::thread([this] {
      name_this_thread("ws-otlp-spans");
      run();
    });
  }
}

bool BatchSpanProcessor::submit(SpanPtr span) noexcept {
  if (!accepting_.load(std::memory_order_relaxed)) {
    dropped_shutdown_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (!queue_.try_push(span)) {
    dropped_full_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (queue_.size() >= config_.max_export_batch_size) {
    // No lock: a wake-up lost to a race costs at most one schedule delay.
    wake_.notify_one();
  }
  return true;
}

size_t BatchSpanProcessor::export_one_batch(uint64_t hard_deadline_mono_ns) {
  std::vector<SpanPtr> batch;
  batch.reserve(std::min(config_.max_export_batch_size, queue_.size()));
  SpanPtr s;
  while (batch.size() < config_.max_export_batch_size && queue_.try_pop(s)) {
    batch.push_back(std::move(s));
  }
  if (batch.empty()) {
    return 0;
  }
  uint64_t deadline = std::min<uint64_t>(mono_ns() + config_.export_timeout_ms * 1000000ull,
                               hard_deadline_mono_ns);
  processed_.fetch_add(batch.size(), std::memory_order_relaxed);
  ExportResult r = exporter_->export_spans(batch, deadline);
  if (r == ExportResult::Success) {
    exported_.fetch_add(batch.size(), std::memory_order_relaxed);
  } else {
    failed_batches_.fetch_add(1, std::memory_order_relaxed);
    dropped_failed_.fetch_add(batch.size(), std::memory_order_relaxed);
  }
  return batch.size();
}

void BatchSpanProcessor::run() {
  const auto delay = std::chrono::milliseconds(config_.schedule_delay_ms);
  for (;;) {
    uint64_t flush_target;
    bool stopping;
    uint64_t hard_deadline = UINT64_MAX;
    {
      std::unique_lock lock(mu_);
      wake_.wait_until(lock, std::chrono::steady_clock::now() + delay, [&] {
        return stop_ || flush_requested_ > flush_done_ ||
               queue_.size() >= config_.max_export_batch_size;
      });
      flush_target = flush_requested_;
      stopping = stop_;
      if (stopping) {
        hard_deadline = stop_deadline_;
      }
    }
    if (stopping || flush_target > flush_done_) {
      // Drain everything (bounded by the shutdown deadline).
      while ((!stopping || mono_ns() < hard_deadline) && export_one_batch(hard_deadline) > 0) {
      }
    } else {
      // Timer or a full batch: export full batches, and one partial on the timer.
      size_t n;
      do {
        n = export_one_batch(hard_deadline);
      } while (n == config_.max_export_batch_size &&
               queue_.size() >= config_.max_export_batch_size);
    }
    std::lock_guard lock(mu_);
    flush_done_ = flush_target;
    done_.notify_all();
    if (stopping) {
      break;
    }
  }
  // Whatever is left after the deadline is dropped and counted.
  SpanPtr s;
  uint64_t left = 0;
  while (queue_.try_pop(s)) {
    ++left;
  }
  dropped_unexported_.fetch_add(left, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  finished_ = true;
  done_.notify_all();
}

bool BatchSpanProcessor::force_flush(uint64_t deadline_mono_ns) {
  if (!thread_.joinable()) {
    return queue_.size() == 0;
  }
  std::unique_lock lock(mu_);
  uint64_t target = ++flush_requested_;
  wake_.notify_all();
  return done_.wait_until(lock, to_steady(deadline_mono_ns),
                          [&] { return flush_done_ >= target || finished_; });
}

void BatchSpanProcessor::shutdown(uint64_t deadline_mono_ns) {
  accepting_.store(false, std::memory_order_relaxed);
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
    WS_LOG(Warn, "span export did not finish by the shutdown deadline; cancelling it");
    exporter_->cancel();
  }
  thread_.join();
}

}  // namespace wstrace::telemetry
