// Batch span processor (OTEL_BSP_*): finished spans go into a bounded
// lock-free queue; one background thread takes batches and exports them.
//
// Contract: submit() never blocks and never waits for the export thread — it
// is a try-push into a fixed array; when the queue is full the span is
// dropped and counted. The export thread holds no lock that submit() takes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "telemetry/bounded_queue.h"
#include "telemetry/exporter.h"
#include "telemetry/span.h"

namespace wstrace::telemetry {

struct BatchConfig {
  size_t max_queue_size = 2048;          // OTEL_BSP_MAX_QUEUE_SIZE
  uint64_t schedule_delay_ms = 5000;     // OTEL_BSP_SCHEDULE_DELAY
  size_t max_export_batch_size = 512;    // OTEL_BSP_MAX_EXPORT_BATCH_SIZE (<= queue size)
  uint64_t export_timeout_ms = 30000;    // OTEL_BSP_EXPORT_TIMEOUT
};

class BatchSpanProcessor {
 public:
  BatchSpanProcessor(BatchConfig config, std::unique_ptr<SpanExporter> exporter);
  ~BatchSpanProcessor();  // shutdown with a 1 s deadline if still running
  BatchSpanProcessor(const BatchSpanProcessor&) = delete;
  BatchSpanProcessor& operator=(const BatchSpanProcessor&) = delete;

  void start();

  // Never blocks. False when the queue is full or the processor is shut down
  // (the span is dropped and counted).
  bool submit(SpanPtr span) noexcept;

  // Exports everything queued before the call; true when done by the deadline.
  bool force_flush(uint64_t deadline_mono_ns);

  // Stops accepting spans, exports what is queued until the deadline, then
  // cancels a still-running export and joins the thread.
  void shutdown(uint64_t deadline_mono_ns);

  uint64_t exported() const { return exported_.load(std::memory_order_relaxed); }
  uint64_t dropped_queue_full() const { return dropped_full_.load(std::memory_order_relaxed); }
  // Spans passed to the exporter with a batch that then failed.
  uint64_t dropped_export_failed() const { return dropped_failed_.load(std::memory_order_relaxed); }
  // Spans passed to the exporter (at the call, whatever its outcome).
  uint64_t processed() const { return processed_.load(std::memory_order_relaxed); }
  // Spans submitted after shutdown began.
  uint64_t dropped_after_shutdown() const { return dropped_shutdown_.load(std::memory_order_relaxed); }
  // Spans still queued when the shutdown deadline passed (never exported).
  uint64_t dropped_at_shutdown() const { return dropped_unexported_.load(std::memory_order_relaxed); }
  uint64_t failed_batches() const { return failed_batches_.load(std::memory_order_relaxed); }
  size_t queue_size() const { return queue_.size(); }
  size_t queue_capacity() const { return queue_.capacity(); }
  const BatchConfig& config() const { return config_; }

 private:
  void run();
  // Pops up to one batch and exports it; returns the number popped.
  size_t export_one_batch(uint64_t hard_deadline_mono_ns);

  BatchConfig config_;
  std::unique_ptr<SpanExporter> exporter_;
  BoundedQueue<SpanPtr> queue_;

  std::mutex mu_;  // guards the fields below; never held while exporting
  std::condition_variable wake_;
  std::condition_variable done_;
  bool stop_ = false;
  bool finished_ = false;
  uint64_t stop_deadline_ = 0;
  uint64_t flush_requested_ = 0;
  uint64_t flush_done_ = 0;

  std::atomic<bool> accepting_{true};
  std::atomic<uint64_t> exported_{0};
  std::atomic<uint64_t> dropped_full_{0};
  std::atomic<uint64_t> dropped_failed_{0};
  std::atomic<uint64_t> processed_{0};
  std::atomic<uint64_t> dropped_shutdown_{0};
  std::atomic<uint64_t> dropped_unexported_{0};
  std::atomic<uint64_t> failed_batches_{0};
  std::thread thread_;
};

}  // namespace wstrace::telemetry
