// The dashboard's per-second samples: quantiles from bucket deltas, the
// difference of two readings, the ring, its JSON, and the sampler thread.
#include "server/samples.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace wstrace::server {
namespace {

const std::vector<double> kBounds{0.001, 0.002, 0.005, 0.010};

TEST(BucketQuantile, InterpolatesInsideTheBucketThatHoldsTheRank) {
  // 100 values: 50 in (0, 1ms], 40 in (1, 2ms], 10 in (2, 5ms].
  std::vector<uint64_t> c{50, 40, 10, 0, 0};
  EXPECT_DOUBLE_EQ(bucket_quantile(kBounds, c, 0.50), 0.001);
  EXPECT_DOUBLE_EQ(bucket_quantile(kBounds, c, 0.70), 0.0015);
  EXPECT_DOUBLE_EQ(bucket_quantile(kBounds, c, 0.99), 0.002 + 0.003 * 0.9);
  EXPECT_DOUBLE_EQ(bucket_quantile(kBounds, c, 1.0), 0.005);
  EXPECT_DOUBLE_EQ(bucket_quantile(kBounds, c, 0.0), 0.001 / 50);  // the first value's share
}

TEST(BucketQuantile, NothingCountedOrMisshapenIsMinusOne) {
  EXPECT_EQ(bucket_quantile(kBounds, {0, 0, 0, 0, 0}, 0.5), -1);
  EXPECT_EQ(bucket_quantile(kBounds, {1, 2}, 0.5), -1);
  EXPECT_EQ(bucket_quantile({}, {3}, 0.5), -1);
}

TEST(BucketQuantile, AboveTheLastBoundIsReportedAsTheLastBound) {
  EXPECT_DOUBLE_EQ(bucket_quantile(kBounds, {0, 0, 0, 0, 7}, 0.5), 0.010);
  EXPECT_DOUBLE_EQ(bucket_quantile(kBounds, {1, 0, 0, 0, 9}, 0.99), 0.010);
}

Reading reading(int64_t t, uint64_t in, uint64_t out, std::vector<uint64_t> delivery) {
  Reading r;
  r.unix_ms = t;
  r.messages_in = in;
  r.messages_out = out;
  r.bytes_in = in * 10;
  r.bytes_out = out * 10;
  r.latency_bounds = kBounds;
  r.delivery_buckets = std::move(delivery);
  r.rtt_buckets = {0, 0, 0, 0, 0};
  return r;
}

TEST(SampleBetween, CountsAreDifferencesAndQuantilesCoverOnlyTheInterval) {
  Reading a = reading(1000, 5, 100, {1000, 0, 0, 0, 0});  // an earlier, fast past
  a.drops = {{"slow_consumer", 3}, {"rate_limited", 1}};
  Reading b = reading(2010, 7, 160, {1000, 0, 60, 0, 0});
  b.drops = {{"slow_consumer", 3}, {"rate_limited", 4}, {"lost", 2}};
  b.connections = 12;
  b.sockets_per_thread = {5, 7};
  b.cluster_link = 1;
  Sample s = sample_between(a, b);
  EXPECT_EQ(s.unix_ms, 2010);
  EXPECT_EQ(s.interval_ms, 1010);
  EXPECT_EQ(s.messages_in, 2u);
  EXPECT_EQ(s.messages_out, 60u);
  EXPECT_EQ(s.bytes_out, 600u);
  EXPECT_EQ(s.deliveries, 60u);
  // All 60 in (2, 5ms]: the earlier 1000 fast ones do not pull the median down.
  EXPECT_GT(s.delivery_p50_ms, 2.0);
  EXPECT_LE(s.delivery_p99_ms, 5.0);
  EXPECT_EQ(s.rtt_count, 0u);
  EXPECT_EQ(s.rtt_p50_ms, -1);
  std::vector<std::pair<std::string, uint64_t>> want{{"rate_limited", 3}, {"lost", 2}};
  EXPECT_EQ(s.drops, want);  // reasons with no new drop are left out
  EXPECT_EQ(s.connections, 12);
  EXPECT_EQ(s.sockets_per_thread, (std::vector<uint64_t>{5, 7}));
  EXPECT_EQ(s.cluster_link, 1);
}

TEST(SampleBetween, ACounterThatWentDownCountsFromZero) {
  Sample s = sample_between(reading(0, 50, 50, {}), reading(1000, 4, 9, {}));
  EXPECT_EQ(s.messages_in, 4u);
  EXPECT_EQ(s.messages_out, 9u);
  EXPECT_EQ(s.deliveries, 0u);
}

TEST(SampleRing, KeepsTheLastCapacityInOrderAndFiltersBySince) {
  SampleRing ring(3);
  for (int64_t t = 1; t <= 5; ++t) {
    Sample s;
    s.unix_ms = t * 1000;
    ring.push(s);
  }
  EXPECT_EQ(ring.size(), 3u);
  auto all = ring.since(0);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].unix_ms, 3000);
  EXPECT_EQ(all[2].unix_ms, 5000);
  auto recent = ring.since(3000);
  ASSERT_EQ(recent.size(), 2u);
  EXPECT_EQ(recent[0].unix_ms, 4000);
  EXPECT_TRUE(ring.since(5000).empty());
}

TEST(SamplesJson, NamesEveryFieldWithNullsForWhatWasNotMeasured) {
  Sample s;
  s.unix_ms = 1700000000000;
  s.interval_ms = 1000;
  s.messages_out = 3;
  s.drops = {{"slow_consumer", 2}};
  s.deliveries = 3;
  s.delivery_p50_ms = 0.25;
  s.delivery_p99_ms = 0.5;
  s.sockets_per_thread = {1, 2};
  std::string j = samples_json({s}, 1000, 900);
  EXPECT_EQ(j,
            "{\"interval_ms\":1000,\"capacity\":900,\"samples\":[{\"t\":1700000000000,\"interval_ms\":1000,"
            "\"connections\":0,\"messages_in\":0,\"messages_out\":3,\"bytes_in\":0,\"bytes_out\":0,"
            "\"drops\":{\"slow_consumer\":2},\"deliveries\":3,\"delivery_p50_ms\":0.25,"
            "\"delivery_p99_ms\":0.5,\"rtt_count\":0,\"rtt_p50_ms\":null,\"rtt_p99_ms\":null,"
            "\"sockets_per_thread\":[1,2],\"cluster_link\":null}]}");
  EXPECT_EQ(samples_json({}, 1000, 900), "{\"interval_ms\":1000,\"capacity\":900,\"samples\":[]}");
}

TEST(Sampler, PushesOneSampleEachIntervalUntilStopped) {
  SampleRing ring(100);
  std::atomic<uint64_t> n{0};
  std::atomic<int64_t> t{0};
  Sampler sampler(
      [&] {
        Reading r;
        r.unix_ms = t += 1000;
        r.messages_out = n += 10;
        return r;
      },
      ring, 10);
  sampler.start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (ring.size() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  sampler.stop();
  auto all = ring.since(0);
  ASSERT_GE(all.size(), 3u);
  for (const auto& s : all) {
    EXPECT_EQ(s.messages_out, 10u);
    EXPECT_EQ(s.interval_ms, 1000);
  }
  const size_t stopped_at = ring.size();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(ring.size(), stopped_at);
}

}  // namespace
}  // namespace wstrace::server
