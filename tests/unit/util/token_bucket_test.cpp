// TokenBucket: the burst, the refill rate, large rates, and the bound
// burst + rate * T over any interval.
#include "util/token_bucket.h"

#include <gtest/gtest.h>

namespace wstrace {
namespace {

constexpr uint64_t kSecond = 1'000'000'000ull;

int take_all(TokenBucket& b, double rate, double burst, uint64_t now, int max) {
  int n = 0;
  while (n < max && b.take(rate, burst, now)) ++n;
  return n;
}

TEST(TokenBucket, StartsFullAndAllowsTheBurstAtOnce) {
  TokenBucket b;
  b.reset(5, 0);
  EXPECT_EQ(take_all(b, 5, 5, 0, 100), 5);
  EXPECT_FALSE(b.take(5, 5, 0));
}

TEST(TokenBucket, RefillsAtTheRate) {
  TokenBucket b;
  b.reset(5, 0);
  EXPECT_EQ(take_all(b, 5, 5, 0, 100), 5);
  EXPECT_EQ(take_all(b, 5, 5, kSecond / 5, 100), 1);       // 200 ms: one token
  EXPECT_EQ(take_all(b, 5, 5, kSecond / 5 + kSecond, 100), 5);  // a second later: full again
  EXPECT_EQ(take_all(b, 5, 5, 10 * kSecond, 100), 5);      // never more than the burst
}

TEST(TokenBucket, NoFixedWindowEdge) {
  // A fixed one-second window lets 2N through around its edge; a bucket lets
  // N (the burst) plus what the rate adds in between.
  TokenBucket b;
  const double n = 100;
  b.reset(n, 0);
  int got = take_all(b, n, n, kSecond - 1000, 1000);  // just before "the next second"
  got += take_all(b, n, n, kSecond + 1000, 1000);     // just after
  EXPECT_LE(got, 101);
}

TEST(TokenBucket, LargeRatesAreHonoured) {
  // Above 65535 per second (a 16-bit counter would wrap and never limit).
  TokenBucket b;
  const double n = 100000;
  b.reset(n, 0);
  EXPECT_EQ(take_all(b, n, n, 0, 1'000'000), 100000);
  EXPECT_FALSE(b.take(n, n, 0));
  EXPECT_EQ(take_all(b, n, n, kSecond / 10, 1'000'000), 10000);
  const double huge = 1 << 30;
  b.reset(huge, 0);
  EXPECT_TRUE(b.take(huge, huge, 0));
}

TEST(TokenBucket, BoundOverAnyInterval) {
  // Taking greedily at 1 ms steps for 3 s: at most burst + rate * 3.
  TokenBucket b;
  const double rate = 1000, burst = 50;
  b.reset(burst, 0);
  int got = 0;
  for (uint64_t t = 0; t <= 3 * kSecond; t += kSecond / 1000) got += take_all(b, rate, burst, t, 1000);
  EXPECT_LE(got, 50 + 3000 + 1);
  EXPECT_GE(got, 3000);
}

TEST(TokenBucket, TimeGoingBackwardsAddsNothing) {
  TokenBucket b;
  b.reset(2, 5 * kSecond);
  EXPECT_EQ(take_all(b, 2, 2, 5 * kSecond, 10), 2);
  EXPECT_EQ(take_all(b, 2, 2, 4 * kSecond, 10), 0);
}

}  // namespace
}  // namespace wstrace
