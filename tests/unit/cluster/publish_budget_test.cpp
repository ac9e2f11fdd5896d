#include "cluster/publish_budget.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace wstrace::cluster {
namespace {

size_t admit(PublishBudget& b, const std::vector<size_t>& sizes) {
  return b.admit(sizes.size(), [&](size_t i) { return sizes[i]; });
}

TEST(PublishBudget, BoundsTheNumberOfPublications) {
  PublishBudget b(3, 1 << 20);
  EXPECT_EQ(admit(b, {10, 10}), 2u);
  EXPECT_EQ(admit(b, {10, 10}), 1u);  // the oldest of the batch is kept
  EXPECT_EQ(admit(b, {10}), 0u);
  EXPECT_EQ(b.count(), 3u);
  EXPECT_EQ(b.bytes(), 30u);
  b.release(1, 10);
  EXPECT_EQ(admit(b, {10, 10}), 1u);
}

TEST(PublishBudget, BoundsTheBytes) {
  PublishBudget b(100, 1000);
  EXPECT_EQ(admit(b, {400, 400, 400}), 2u);
  EXPECT_EQ(b.bytes(), 800u);
  EXPECT_EQ(admit(b, {300}), 0u);
  EXPECT_EQ(admit(b, {200}), 1u);  // exactly full
  EXPECT_EQ(admit(b, {1}), 0u);
  EXPECT_EQ(b.count(), 3u);
  EXPECT_EQ(b.bytes(), 1000u);
  b.release(3, 1000);
  EXPECT_EQ(b.count(), 0u);
  EXPECT_EQ(b.bytes(), 0u);
  EXPECT_EQ(admit(b, {1000}), 1u);
}

TEST(PublishBudget, KeepsAPrefixOfTheBatch) {
  // A small publication after one that does not fit is dropped too: what
  // goes out is always the oldest of a batch.
  PublishBudget b(100, 1000);
  EXPECT_EQ(admit(b, {600, 600, 10}), 1u);
  EXPECT_EQ(b.bytes(), 600u);
  EXPECT_EQ(b.count(), 1u);
}

TEST(PublishBudget, OnePublicationLargerThanTheBudgetGoesWhenNothingWaits) {
  PublishBudget b(100, 1000);
  EXPECT_EQ(admit(b, {5000, 1}), 1u);
  EXPECT_EQ(b.bytes(), 5000u);
  EXPECT_EQ(admit(b, {1}), 0u);     // over the budget now
  EXPECT_EQ(admit(b, {5000}), 0u);  // not while something waits
  b.release(1, 5000);
  EXPECT_EQ(admit(b, {10}), 1u);
  EXPECT_EQ(admit(b, {5000}), 0u);
}

TEST(PublishBudget, EmptyBatches) {
  PublishBudget b(0, 0);
  EXPECT_EQ(admit(b, {}), 0u);
  EXPECT_EQ(admit(b, {1}), 0u);  // a count of 0 admits nothing, even alone
  EXPECT_EQ(b.count(), 0u);
  EXPECT_EQ(b.bytes(), 0u);
}

TEST(PublishBudget, ConcurrentAdmissionsNeverExceedTheBudget) {
  // Threads admit batches and release them; what is admitted at any moment
  // (counted by the test itself) never exceeds either bound.
  constexpr size_t kMaxCount = 50, kMaxBytes = 5000;
  PublishBudget b(kMaxCount, kMaxBytes);
  std::atomic<size_t> held_count{0}, held_bytes{0};
  std::atomic<bool> over{false};
  std::atomic<size_t> admitted_total{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<size_t> sizes;
      for (int round = 0; round < 20000; ++round) {
        sizes.assign(1 + (round + t) % 7, 0);
        for (size_t i = 0; i < sizes.size(); ++i) sizes[i] = 1 + (round * 31 + i * 17 + t) % 400;
        size_t k = b.admit(sizes.size(), [&](size_t i) { return sizes[i]; });
        size_t bytes = 0;
        for (size_t i = 0; i < k; ++i) bytes += sizes[i];
        const size_t now_count = held_count.fetch_add(k) + k;
        const size_t now_bytes = held_bytes.fetch_add(bytes) + bytes;
        if (now_count > kMaxCount || now_bytes > kMaxBytes) over = true;
        admitted_total += k;
        held_count.fetch_sub(k);
        held_bytes.fetch_sub(bytes);
        b.release(k, bytes);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_FALSE(over.load());
  EXPECT_GT(admitted_total.load(), 0u);
  EXPECT_EQ(b.count(), 0u);
  EXPECT_EQ(b.bytes(), 0u);
}

}  // namespace
}  // namespace wstrace::cluster
