#include "util/units.h"

#include <gtest/gtest.h>

namespace wstrace {

TEST(Units, Sizes) {
  EXPECT_EQ(parse_size("512"), 512u);
  EXPECT_EQ(parse_size("64KiB"), 65536u);
  EXPECT_EQ(parse_size("1MiB"), 1048576u);
  EXPECT_EQ(parse_size("1mib"), 1048576u);
  EXPECT_EQ(parse_size("2KB"), 2000u);
  EXPECT_EQ(parse_size("1.5KiB"), 1536u);
  EXPECT_EQ(parse_size(" 3 GiB "), 3221225472u);
  EXPECT_FALSE(parse_size(""));
  EXPECT_FALSE(parse_size("MiB"));
  EXPECT_FALSE(parse_size("-1"));
  EXPECT_FALSE(parse_size("12 parsecs"));
  EXPECT_FALSE(parse_size("99999999999GiB"));
}

TEST(Units, Durations) {
  EXPECT_EQ(parse_duration_ns("500ms"), 500'000'000u);
  EXPECT_EQ(parse_duration_ns("30s"), 30'000'000'000u);
  EXPECT_EQ(parse_duration_ns("2m"), 120'000'000'000u);
  EXPECT_EQ(parse_duration_ns("1h"), 3600'000'000'000u);
  EXPECT_EQ(parse_duration_ns("10"), 10'000'000'000u);
  EXPECT_EQ(parse_duration_ns("0"), 0u);
  EXPECT_EQ(parse_duration_ns("250us"), 250'000u);
  EXPECT_FALSE(parse_duration_ns("soon"));
  EXPECT_FALSE(parse_duration_ns("5 fortnights"));
}

TEST(Units, FormatRoundTrips) {
  for (uint64_t v : {0ull, 1ull, 1024ull, 65536ull, 1048576ull, 3ull << 30, 1000ull}) {
    EXPECT_EQ(parse_size(format_size(v)), v);
  }
  for (uint64_t v : {0ull, 1ull, 1000ull, 500'000'000ull, 30'000'000'000ull, 3600'000'000'000ull}) {
    EXPECT_EQ(parse_duration_ns(format_duration_ns(v)), v);
  }
}

}  // namespace wstrace
