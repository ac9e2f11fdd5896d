#include "telemetry/trace_context.h"

#include <gtest/gtest.h>

#include <set>

namespace wstrace::telemetry {
namespace {

constexpr const char* kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceParent, ParsesValid) {
  auto ctx = parse_traceparent(kValid);
  ASSERT_TRUE(ctx);
  EXPECT_EQ(ctx->trace_id.hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(ctx->span_id.hex(), "00f067aa0ba902b7");
  EXPECT_TRUE(ctx->sampled());
  EXPECT_TRUE(ctx->remote);
  EXPECT_TRUE(ctx->trace_state.empty());
  EXPECT_EQ(format_traceparent(*ctx), kValid);
}

TEST(TraceParent, NotSampledAndOtherFlags) {
  auto ctx = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(ctx);
  EXPECT_FALSE(ctx->sampled());
  ctx = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09");
  ASSERT_TRUE(ctx);
  EXPECT_TRUE(ctx->sampled());
  EXPECT_EQ(format_traceparent(*ctx).substr(53), "01");  // only known flags propagate
}

TEST(TraceParent, TrimsOws) {
  EXPECT_TRUE(parse_traceparent(std::string(" \t") + kValid + " "));
}

TEST(TraceParent, FutureVersions) {
  // Higher versions: parse the first 55 characters; more must start with '-'.
  auto ctx = parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(ctx);
  EXPECT_TRUE(ctx->sampled());
  EXPECT_TRUE(parse_traceparent(
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds"));
  EXPECT_FALSE(parse_traceparent(
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what-the-future-holds"));
  EXPECT_FALSE(parse_traceparent(
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"));
}

TEST(TraceParent, RejectsInvalid) {
  const char* bad[] = {
      "",
      "00",
      // version ff
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      // uppercase anywhere
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
      "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
      // all-zero ids
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      // wrong lengths
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b77-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
      "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      // extra fields with version 00
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
      // wrong separators / non-hex
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
      "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
      "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
  };
  for (const char* s : bad) {
    EXPECT_FALSE(parse_traceparent(s)) << s;
  }
  // An embedded NUL is not OWS.
  EXPECT_FALSE(parse_traceparent(std::string(kValid) + std::string(1, '\0')));
}

TEST(TraceState, KeptOpaqueAndBounded) {
  EXPECT_EQ(parse_tracestate(" congo=t61rcWkgMzE,rojo=00f067aa0ba902b7 "),
            "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
  EXPECT_EQ(parse_tracestate(std::string(513, 'a')), "");
  EXPECT_EQ(parse_tracestate(std::string(512, 'a')).size(), 512u);
  EXPECT_EQ(parse_tracestate("a=b\nc=d"), "");
}

TEST(Ids, NeverZeroAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    TraceId t = new_trace_id();
    SpanId s = new_span_id();
    EXPECT_TRUE(t.valid());
    EXPECT_TRUE(s.valid());
    EXPECT_TRUE(seen.insert(t.hex()).second);
  }
}

TEST(Ids, HexRoundTrip) {
  auto t = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_TRUE(TraceId::from_hex("4BF92F3577B34DA6A3CE929D0E0E4736"));  // admin filters
  EXPECT_FALSE(TraceId::from_hex("4bf92f"));
  EXPECT_FALSE(SpanId::from_hex("00f067aa0ba902bx"));
  EXPECT_EQ(SpanId::from_hex("00f067aa0ba902b7")->hex(), "00f067aa0ba902b7");
}

TEST(Ids, RoughlyUniformBits) {
  // Each bit of the low 56 bits set about half the time (sampler input).
  int ones[56] = {0};
  constexpr int kN = 20000;
  for (int i = 0; i < kN; ++i) {
    TraceId t = new_trace_id();
    for (int b = 0; b < 56; ++b) {
      ones[b] += (t.bytes[15 - b / 8] >> (b % 8)) & 1;
    }
  }
  for (int b = 0; b < 56; ++b) {
    EXPECT_NEAR(ones[b], kN / 2, kN / 20) << b;
  }
}

}  // namespace
}  // namespace wstrace::telemetry
