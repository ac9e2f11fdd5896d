#include "telemetry/metrics.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace wstrace::telemetry {
namespace {

TEST(Metrics, CounterSumsShards) {
  MetricRegistry reg;
  Counter c = reg.add_counter("test.count", "A count", "{thing}");
  reg.shard(0);
  c.add(reg.shard(0), 3);
  c.add(reg.shard(5));
  auto snap = reg.collect();
  const MetricData* m = snap.find("test.count");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->type, MetricType::Sum);
  EXPECT_TRUE(m->monotonic);
  ASSERT_EQ(m->points.size(), 1u);
  EXPECT_EQ(m->points[0].as_int, 4);
  EXPECT_TRUE(m->points[0].labels.empty());
  EXPECT_GT(snap.time_unix_ns, 0u);
  EXPECT_LE(snap.start_unix_ns, snap.time_unix_ns);
}

TEST(Metrics, SeriesAndUpDown) {
  MetricRegistry reg;
  Counter c = reg.add_counter("msgs", "", "{message}",
                              {{{"type", "Ping"}}, {{"type", "Message"}}});
  UpDownCounter u = reg.add_updown_counter("active", "", "{connection}");
  Shard& s = reg.shard(1);
  c.add(s, 2, 0);
  c.add(s, 5, 1);
  c.add(s, 100, 2);  // out of range: ignored
  u.add(s, 3);
  u.add(reg.shard(2), -5);
  auto snap = reg.collect();
  const MetricData* m = snap.find("msgs");
  ASSERT_EQ(m->points.size(), 2u);
  EXPECT_EQ(m->points[0].as_int, 2);
  EXPECT_EQ(m->points[0].labels, (LabelSet{{"type", "Ping"}}));
  EXPECT_EQ(m->points[1].as_int, 5);
  const MetricData* a = snap.find("active");
  EXPECT_FALSE(a->monotonic);
  EXPECT_EQ(a->points[0].as_int, -2);
}

TEST(Metrics, HistogramBucketsInclusiveUpper) {
  MetricRegistry reg;
  Histogram h = reg.add_histogram("lat", "", "s", {1, 2, 5});
  Shard& s = reg.shard(0);
  for (double v : {0.5, 1.0, 1.5, 2.0, 4.0, 5.0, 7.0, -1.0}) {
    h.record(s, v);
  }
  h.record(s, std::numeric_limits<double>::quiet_NaN());
  auto snap = reg.collect();
  const MetricData* m = snap.find("lat");
  ASSERT_EQ(m->type, MetricType::Histogram);
  EXPECT_EQ(m->bounds, (std::vector<double>{1, 2, 5}));
  const Point& p = m->points[0];
  EXPECT_EQ(p.bucket_counts, (std::vector<uint64_t>{3, 2, 2, 1}));
  EXPECT_EQ(p.count, 8u);
  EXPECT_DOUBLE_EQ(p.sum, 20.0);
  EXPECT_DOUBLE_EQ(p.min, -1.0);
  EXPECT_DOUBLE_EQ(p.max, 7.0);
}

TEST(Metrics, HistogramManyBoundsBinarySearch) {
  MetricRegistry reg;
  std::vector<double> bounds;
  for (int i = 1; i <= 40; ++i) {
    bounds.push_back(i);
  }
  Histogram h = reg.add_histogram("big", "", "1", bounds);
  Shard& s = reg.shard(0);
  for (int i = 0; i <= 41; ++i) {
    h.record(s, i);  // 0 and 1 -> bucket 0; i -> bucket i-1; 41 -> +Inf
  }
  auto snap = reg.collect();
  const Point& p = snap.find("big")->points[0];
  EXPECT_EQ(p.bucket_counts[0], 2u);
  for (int b = 1; b < 40; ++b) {
    EXPECT_EQ(p.bucket_counts[b], 1u) << b;
  }
  EXPECT_EQ(p.bucket_counts[40], 1u);
}

TEST(Metrics, EmptyHistogramMinMaxZero) {
  MetricRegistry reg;
  reg.add_histogram("h", "", "s", {1}, {{{"a", "b"}}, {{"a", "c"}}});
  auto snap = reg.collect();
  const MetricData* m = snap.find("h");
  ASSERT_EQ(m->points.size(), 2u);
  EXPECT_EQ(m->points[1].count, 0u);
  EXPECT_EQ(m->points[1].min, 0.0);
  EXPECT_EQ(m->points[1].max, 0.0);
}

TEST(Metrics, Observers) {
  MetricRegistry reg;
  int64_t level = 7;
  reg.add_observable_gauge("g", "", "By", [&](std::vector<Point>& out) {
    out.push_back(Point::of_int(level));
    out.push_back(Point::of_double(1.5, {{"k", "v"}}));
  });
  reg.add_observable_counter("c", "", "s",
                             [](std::vector<Point>& out) { out.push_back(Point::of_double(2.5)); });
  auto snap = reg.collect();
  EXPECT_EQ(snap.find("g")->type, MetricType::Gauge);
  EXPECT_EQ(snap.find("g")->points[0].as_int, 7);
  EXPECT_EQ(snap.find("g")->points[1].as_double, 1.5);
  EXPECT_EQ(snap.find("c")->type, MetricType::Sum);
  EXPECT_TRUE(snap.find("c")->monotonic);
}

TEST(Metrics, RegistrationAfterFreezeIsInert) {
  MetricRegistry reg;
  Counter a = reg.add_counter("a", "", "1");
  Counter dup = reg.add_counter("a", "", "1");
  EXPECT_EQ(dup.nseries, 0u);
  Shard& s = reg.shard(0);
  Counter late = reg.add_counter("late", "", "1");
  late.add(s, 1);  // must not touch memory
  a.add(s);
  auto snap = reg.collect();
  EXPECT_EQ(snap.find("late"), nullptr);
  EXPECT_EQ(snap.find("a")->points[0].as_int, 1);
}

TEST(Metrics, ThreadsRecordingSumExactly) {
  MetricRegistry reg;
  Counter c = reg.add_counter("c", "", "1", {{{"k", "0"}}, {{"k", "1"}}});
  Histogram h = reg.add_histogram("h", "", "1", {10, 100});
  constexpr int kThreads = 8;
  constexpr int kIters = 200000;
  std::atomic<bool> stop{false};
  // A concurrent reader must never see a sum above the final value.
  std::thread reader([&] {
    while (!stop.load()) {
      auto snap = reg.collect();
      ASSERT_LE(snap.find("c")->points[0].as_int, int64_t{kThreads} * kIters);
    }
  });
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      Shard& s = reg.shard(static_cast<size_t>(t));
      for (int i = 0; i < kIters; ++i) {
        c.add(s, 1, 0);
        c.add(s, 2, 1);
        h.record(s, i % 200);
      }
    });
  }
  for (auto& t : ts) {
    t.join();
  }
  stop = true;
  reader.join();
  auto snap = reg.collect();
  EXPECT_EQ(snap.find("c")->points[0].as_int, int64_t{kThreads} * kIters);
  EXPECT_EQ(snap.find("c")->points[1].as_int, int64_t{kThreads} * kIters * 2);
  const Point& p = snap.find("h")->points[0];
  EXPECT_EQ(p.count, uint64_t{kThreads} * kIters);
  // per 200 values: 0..10 -> 11, 11..100 -> 90, 101..199 -> 99
  EXPECT_EQ(p.bucket_counts[0], uint64_t{kThreads} * (kIters / 200) * 11);
  EXPECT_EQ(p.bucket_counts[1], uint64_t{kThreads} * (kIters / 200) * 90);
  EXPECT_EQ(p.bucket_counts[2], uint64_t{kThreads} * (kIters / 200) * 99);
  EXPECT_EQ(p.max, 199);
  EXPECT_EQ(p.min, 0);
}

#define TEST_METRICS(M)                                                                \
  M(Counter, sent, "test.sent", "Sent", "{message}")                                 \
  M(Counter, errors, "test.errors", "Errors", "{error}",                             \
    {{{"error.type", "a"}}, {{"error.type", "b"}}})                                  \
  M(UpDownCounter, active, "test.active", "Active", "{connection}")                  \
  M(Histogram, latency, "test.latency", "Latency", "s", {0.001, 0.01, 0.1})          \
  M(Histogram, by_kind, "test.by_kind", "By kind", "s", {1, 2}, {{{"kind", "x"}}})
WSTRACE_METRICS_STRUCT(TestMetrics, TEST_METRICS);

TEST(Metrics, XMacroDeclaresOnce) {
  MetricRegistry reg;
  TestMetrics m;
  m.register_all(reg);
  Shard& s = reg.shard(0);
  m.sent.add(s);
  m.errors.add(s, 1, 1);
  m.active.add(s, 2);
  m.latency.record(s, 0.005);
  m.by_kind.record(s, 3);
  auto snap = reg.collect();
  ASSERT_EQ(snap.metrics.size(), 5u);
  EXPECT_EQ(snap.find("test.errors")->points[1].as_int, 1);
  EXPECT_EQ(snap.find("test.errors")->points[1].labels[0].second, "b");
  EXPECT_EQ(snap.find("test.latency")->points[0].bucket_counts[1], 1u);
  EXPECT_EQ(snap.find("test.by_kind")->points[0].labels[0].second, "x");
  EXPECT_EQ(snap.find("test.by_kind")->points[0].bucket_counts[2], 1u);
}

}  // namespace
}  // namespace wstrace::telemetry
