#include "telemetry/batch_processor.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "util/clock.h"

namespace wstrace::telemetry {
namespace {

SpanPtr make_span(int i) {
  auto s = std::make_shared<SpanData>();
  s->trace_id = new_trace_id();
  s->span_id = new_span_id();
  s->name = Text::copy("s" + std::to_string(i));
  return s;
}

// Records batches; can be made to block until released or cancelled.
class FakeExporter : public SpanExporter {
 public:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool block = false;
    bool entered = false;
    bool cancelled = false;
    std::vector<std::vector<SpanPtr>> batches;
    size_t spans = 0;
    bool fail = false;
  };
  explicit FakeExporter(std::shared_ptr<State> st) : st_(std::move(st)) {}
  ExportResult export_spans(const std::vector<SpanPtr>& batch, uint64_t) noexcept override {
    std::unique_lock lock(st_->mu);
    st_->entered = true;
    st_->cv.notify_all();
    st_->cv.wait(lock, [&] { return !st_->block || st_->cancelled; });
    st_->batches.push_back(batch);
    st_->spans += batch.size();
    return st_->fail ? ExportResult::Failure : ExportResult::Success;
  }
  void cancel() noexcept override {
    std::lock_guard lock(st_->mu);
    st_->cancelled = true;
    st_->cv.notify_all();
  }

 private:
  std::shared_ptr<State> st_;
};

uint64_t in_ms(uint64_t ms) { return mono_ns() + ms * 1'000'000ull; }

TEST(BatchSpanProcessor, BatchesAndFlushes) {
  auto st = std::make_shared<FakeExporter::State>();
  BatchConfig cfg;
  cfg.max_queue_size = 100;
  cfg.max_export_batch_size = 10;
  cfg.schedule_delay_ms = 3'600'000;  // only size and flush trigger exports
  BatchSpanProcessor bsp(cfg, std::make_unique<FakeExporter>(st));
  bsp.start();
  for (int i = 0; i < 25; ++i) {
    EXPECT_TRUE(bsp.submit(make_span(i)));
  }
  ASSERT_TRUE(bsp.force_flush(in_ms(10'000)));
  std::lock_guard lock(st->mu);
  EXPECT_EQ(st->spans, 25u);
  for (const auto& b : st->batches) {
    EXPECT_LE(b.size(), 10u);
  }
  EXPECT_EQ(bsp.exported(), 25u);
  EXPECT_EQ(bsp.dropped_queue_full(), 0u);
}

TEST(BatchSpanProcessor, FullQueueDropsAndNeverBlocks) {
  auto st = std::make_shared<FakeExporter::State>();
  st->block = true;
  BatchConfig cfg;
  cfg.max_queue_size = 8;
  cfg.max_export_batch_size = 4;
  cfg.schedule_delay_ms = 1;
  BatchSpanProcessor bsp(cfg, std::make_unique<FakeExporter>(st));
  bsp.start();
  // Get the exporter stuck inside export_spans with one batch.
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(bsp.submit(make_span(i)));
  }
  {
    std::unique_lock lock(st->mu);
    ASSERT_TRUE(st->cv.wait_for(lock, std::chrono::seconds(10), [&] { return st->entered; }));
  }
  // The exporter is stuck: submits still return at once; 8 fit, the rest drop.
  int accepted = 0, rejected = 0;
  for (int i = 0; i < 1000; ++i) {
    (bsp.submit(make_span(i)) ? accepted : rejected)++;
  }
  EXPECT_EQ(accepted, 8);
  EXPECT_EQ(rejected, 992);
  EXPECT_EQ(bsp.dropped_queue_full(), 992u);
  EXPECT_EQ(bsp.queue_size(), 8u);
  {
    std::lock_guard lock(st->mu);
    st->block = false;
    st->cv.notify_all();
  }
  bsp.shutdown(in_ms(10'000));
  std::lock_guard lock(st->mu);
  EXPECT_EQ(st->spans, 12u);
  EXPECT_EQ(bsp.exported(), 12u);
  EXPECT_FALSE(bsp.submit(make_span(0)));  // after shutdown: dropped
}

TEST(BatchSpanProcessor, ShutdownDeadlineCancelsStuckExport) {
  auto st = std::make_shared<FakeExporter::State>();
  st->block = true;
  BatchConfig cfg;
  cfg.max_export_batch_size = 1;
  BatchSpanProcessor bsp(cfg, std::make_unique<FakeExporter>(st));
  bsp.start();
  bsp.submit(make_span(1));
  {
    std::unique_lock lock(st->mu);
    ASSERT_TRUE(st->cv.wait_for(lock, std::chrono::seconds(10), [&] { return st->entered; }));
  }
  bsp.submit(make_span(2));
  bsp.shutdown(in_ms(50));  // returns: the exporter is cancelled at the deadline
  std::lock_guard lock(st->mu);
  EXPECT_TRUE(st->cancelled);
}

TEST(BatchSpanProcessor, FailedExportsCounted) {
  auto st = std::make_shared<FakeExporter::State>();
  st->fail = true;
  BatchConfig cfg;
  cfg.max_export_batch_size = 5;
  BatchSpanProcessor bsp(cfg, std::make_unique<FakeExporter>(st));
  bsp.start();
  for (int i = 0; i < 7; ++i) {
    bsp.submit(make_span(i));
  }
  bsp.force_flush(in_ms(10'000));
  EXPECT_EQ(bsp.exported(), 0u);
  EXPECT_EQ(bsp.dropped_export_failed(), 7u);
  EXPECT_EQ(bsp.failed_batches(), 2u);
}

TEST(BoundedQueue, ManyProducersExact) {
  BoundedQueue<int> q(1024);
  std::atomic<int> pushed{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        int v = i;
        if (q.try_push(v)) {
          pushed++;
        }
      }
    });
  }
  for (auto& t : ts) {
    t.join();
  }
  EXPECT_EQ(pushed.load(), 1024);
  int v, n = 0;
  while (q.try_pop(v)) {
    ++n;
  }
  EXPECT_EQ(n, 1024);
}

}  // namespace
}  // namespace wstrace::telemetry
