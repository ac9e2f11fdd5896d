#include "telemetry/sampler.h"

#include <gtest/gtest.h>

namespace wstrace::telemetry {
namespace {

TraceId id_with_low56(uint64_t r) {
  TraceId t;
  t.bytes[0] = 0xab;
  for (int i = 0; i < 7; ++i) {
    t.bytes[15 - i] = static_cast<uint8_t>(r >> (8 * i));
  }
  return t;
}

SpanContext parent(bool sampled, bool remote) {
  SpanContext c;
  c.trace_id = new_trace_id();
  c.span_id = new_span_id();
  c.trace_flags = sampled ? kFlagSampled : 0;
  c.remote = remote;
  return c;
}

TEST(Sampler, DefaultIsParentBasedAlwaysOn) {
  Sampler s = Sampler::from_env(nullptr, nullptr);
  EXPECT_EQ(s.type(), Sampler::Type::ParentBasedAlwaysOn);
  EXPECT_TRUE(s.should_sample(nullptr, new_trace_id()));
  auto p = parent(false, true);
  EXPECT_FALSE(s.should_sample(&p, p.trace_id));
  p = parent(true, false);
  EXPECT_TRUE(s.should_sample(&p, p.trace_id));
}

TEST(Sampler, FromEnvNames) {
  EXPECT_EQ(Sampler::from_env("always_on", nullptr).type(), Sampler::Type::AlwaysOn);
  EXPECT_EQ(Sampler::from_env("always_off", nullptr).type(), Sampler::Type::AlwaysOff);
  EXPECT_EQ(Sampler::from_env("traceidratio", "0.25").type(), Sampler::Type::TraceIdRatio);
  EXPECT_DOUBLE_EQ(Sampler::from_env("traceidratio", "0.25").ratio(), 0.25);
  EXPECT_EQ(Sampler::from_env("parentbased_always_off", nullptr).type(),
            Sampler::Type::ParentBasedAlwaysOff);
  EXPECT_EQ(Sampler::from_env("parentbased_traceidratio", "0.5").type(),
            Sampler::Type::ParentBasedTraceIdRatio);
  // Unknown sampler: warning + default. Bad ratio: warning + 1.0.
  EXPECT_EQ(Sampler::from_env("jaeger_remote", nullptr).type(), Sampler::Type::ParentBasedAlwaysOn);
  EXPECT_DOUBLE_EQ(Sampler::from_env("traceidratio", "2").ratio(), 1.0);
  EXPECT_DOUBLE_EQ(Sampler::from_env("traceidratio", "abc").ratio(), 1.0);
  EXPECT_DOUBLE_EQ(Sampler::from_env("traceidratio", "-0.1").ratio(), 1.0);
  EXPECT_DOUBLE_EQ(Sampler::from_env("traceidratio", nullptr).ratio(), 1.0);
  EXPECT_DOUBLE_EQ(Sampler::from_env("traceidratio", "0").ratio(), 0.0);
}

TEST(Sampler, AlwaysOnOffIgnoreParent) {
  auto p = parent(false, true);
  EXPECT_TRUE(Sampler::always_on().should_sample(&p, p.trace_id));
  p = parent(true, true);
  EXPECT_FALSE(Sampler::always_off().should_sample(&p, p.trace_id));
}

TEST(Sampler, RatioBoundsAndThreshold) {
  constexpr uint64_t k56 = uint64_t{1} << 56;
  EXPECT_EQ(Sampler::ratio_threshold(1.0), 0u);
  EXPECT_EQ(Sampler::ratio_threshold(0.0), k56);
  EXPECT_EQ(Sampler::ratio_threshold(0.5), k56 / 2);
  EXPECT_EQ(Sampler::ratio_threshold(0.25), k56 / 4 * 3);
  Sampler half = Sampler::trace_id_ratio(0.5);
  EXPECT_TRUE(half.should_sample(nullptr, id_with_low56(k56 / 2)));
  EXPECT_FALSE(half.should_sample(nullptr, id_with_low56(k56 / 2 - 1)));
  EXPECT_TRUE(half.should_sample(nullptr, id_with_low56(k56 - 1)));
  EXPECT_FALSE(half.should_sample(nullptr, id_with_low56(0)));
  // Ratio 0 never samples, even the largest value; ratio 1 always, even 0.
  EXPECT_FALSE(Sampler::trace_id_ratio(0).should_sample(nullptr, id_with_low56(k56 - 1)));
  EXPECT_TRUE(Sampler::trace_id_ratio(1).should_sample(nullptr, id_with_low56(0)));
  // The high byte of the low 8 (byte 8) is not part of the randomness.
  TraceId t = id_with_low56(k56 / 2 - 1);
  t.bytes[8] = 0xff;
  EXPECT_FALSE(half.should_sample(nullptr, t));
}

TEST(Sampler, RatioDeterministicMonotonicAndProportional) {
  Sampler s10 = Sampler::trace_id_ratio(0.1);
  Sampler s30 = Sampler::trace_id_ratio(0.3);
  int n10 = 0, n30 = 0;
  constexpr int kN = 50000;
  for (int i = 0; i < kN; ++i) {
    TraceId t = new_trace_id();
    bool a = s10.should_sample(nullptr, t);
    EXPECT_EQ(a, s10.should_sample(nullptr, t));  // deterministic
    bool b = s30.should_sample(nullptr, t);
    if (a) {
      EXPECT_TRUE(b);  // sampled at 0.1 => sampled at 0.3
    }
    n10 += a;
    n30 += b;
  }
  EXPECT_NEAR(n10, kN * 0.1, kN * 0.02);
  EXPECT_NEAR(n30, kN * 0.3, kN * 0.02);
}

TEST(Sampler, ParentBasedFollowsParent) {
  for (auto type : {Sampler::Type::AlwaysOn, Sampler::Type::AlwaysOff, Sampler::Type::TraceIdRatio}) {
    Sampler s = Sampler::parent_based(type, 0.0);
    for (bool remote : {false, true}) {
      auto sampled = parent(true, remote);
      auto dropped = parent(false, remote);
      EXPECT_TRUE(s.should_sample(&sampled, sampled.trace_id));
      EXPECT_FALSE(s.should_sample(&dropped, dropped.trace_id));
    }
  }
  // Root spans use the root sampler.
  EXPECT_TRUE(Sampler::parent_based(Sampler::Type::AlwaysOn).should_sample(nullptr, new_trace_id()));
  EXPECT_FALSE(Sampler::parent_based(Sampler::Type::AlwaysOff).should_sample(nullptr, new_trace_id()));
  EXPECT_FALSE(Sampler::parent_based(Sampler::Type::TraceIdRatio, 0.0)
                   .should_sample(nullptr, new_trace_id()));
  // An invalid parent counts as none.
  SpanContext invalid;
  invalid.trace_flags = kFlagSampled;
  EXPECT_FALSE(Sampler::parent_based(Sampler::Type::AlwaysOff).should_sample(&invalid, new_trace_id()));
}

}  // namespace
}  // namespace wstrace::telemetry
