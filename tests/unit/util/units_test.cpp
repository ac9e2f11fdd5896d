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

namespace wstrace {

TEST(Units, SizeUnitsAndSpelling) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("7B"), 7u);
  EXPECT_EQ(parse_size("1k"), 1024u);
  EXPECT_EQ(parse_size("1K"), 1024u);
  EXPECT_EQ(parse_size("2M"), 2u << 20);
  EXPECT_EQ(parse_size("1g"), 1u << 30);
  EXPECT_EQ(parse_size("1GB"), 1'000'000'000u);
  EXPECT_EQ(parse_size("3MB"), 3'000'000u);
  EXPECT_EQ(parse_size("64 KiB"), 65536u);
  EXPECT_EQ(parse_size(".5KiB"), 512u);
  EXPECT_EQ(parse_size("0.5"), 1u);  // rounded to the nearest byte
  for (const char* bad : {"1.2.3", "1e3", "0x10", "1KiBs", "KiB1", "1 K i B", "+1", "nan",
                          "inf", "1,5MiB", "\t", "1TiB"}) {
    EXPECT_FALSE(parse_size(bad)) << bad;
  }
}

TEST(Units, DurationUnits) {
  EXPECT_EQ(parse_duration_ns("1ns"), 1u);
  EXPECT_EQ(parse_duration_ns("1us"), 1000u);
  EXPECT_EQ(parse_duration_ns("1.5s"), 1'500'000'000u);
  EXPECT_EQ(parse_duration_ns("1min"), 60'000'000'000u);
  EXPECT_EQ(parse_duration_ns("1MS"), 1'000'000u);
  EXPECT_EQ(parse_duration_ns(" 2 h "), 7200'000'000'000u);
  for (const char* bad : {"", "s", "-1s", "1d", "1 week", "1e3s", "1..2s", "1sec"}) {
    EXPECT_FALSE(parse_duration_ns(bad)) << bad;
  }
}

TEST(Units, HugeValuesAreExactOrRefused) {
  // Above 2^63 a conversion through a signed 64-bit integer would overflow.
  EXPECT_EQ(parse_size("10000000000GB"), 10'000'000'000'000'000'000ull);
  EXPECT_EQ(parse_size("16000000000GiB"), 16'000'000'000ull << 30);
  EXPECT_EQ(parse_duration_ns("3000000h"), 3'000'000ull * 3600'000'000'000ull);
  EXPECT_FALSE(parse_size("20000000000GB"));   // > 2^64
  EXPECT_FALSE(parse_duration_ns("6000000h"));  // > 2^64 ns
  EXPECT_FALSE(parse_size("1" + std::string(400, '0')));  // not even a finite double
}

TEST(Units, Formatting) {
  EXPECT_EQ(format_size(0), "0B");
  EXPECT_EQ(format_size(1023), "1023B");
  EXPECT_EQ(format_size(1024), "1KiB");
  EXPECT_EQ(format_size(1536), "1536B");
  EXPECT_EQ(format_size(1u << 20), "1MiB");
  EXPECT_EQ(format_size(5ull << 30), "5GiB");
  EXPECT_EQ(format_duration_ns(0), "0s");
  EXPECT_EQ(format_duration_ns(1), "1ns");
  EXPECT_EQ(format_duration_ns(1500), "1500ns");
  EXPECT_EQ(format_duration_ns(2000), "2us");
  EXPECT_EQ(format_duration_ns(500'000'000), "500ms");
  EXPECT_EQ(format_duration_ns(90'000'000'000), "90s");
  EXPECT_EQ(format_duration_ns(120'000'000'000), "2m");
  EXPECT_EQ(format_duration_ns(7200'000'000'000), "2h");
}

}  // namespace wstrace
