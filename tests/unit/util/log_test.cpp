#include "util/log.h"

#include <gtest/gtest.h>

namespace wstrace::log {

constexpr uint64_t kT = 1'700'000'000'123'000'000ull;

TEST(Log, TextLine) {
  std::string line = format_line(Format::Text, Level::Info, "listening",
                                 {{"addr", "127.0.0.1:8080"}, {"threads", 2}}, kT);
  EXPECT_EQ(line, "2023-11-14T22:13:20.123Z INFO  listening addr=127.0.0.1:8080 threads=2\n");
}

TEST(Log, TextQuotesValuesWithSpaces) {
  std::string line = format_line(Format::Text, Level::Warn, "x", {{"why", "no route"}}, kT);
  EXPECT_NE(line.find("why=\"no route\""), std::string::npos);
}

TEST(Log, JsonLineEscapes) {
  std::string line = format_line(Format::Json, Level::Error, "bad \"thing\"\n",
                                 {{"n", -3}, {"ok", true}, {"s", "a\x01"}}, kT);
  EXPECT_EQ(line,
            "{\"ts\":\"2023-11-14T22:13:20.123Z\",\"level\":\"error\",\"msg\":\"bad "
            "\\\"thing\\\"\\n\",\"n\":-3,\"ok\":true,\"s\":\"a\\u0001\"}\n");
}

TEST(Log, LinesInsideASpanCarryIds) {
  uint8_t trace[16];
  uint8_t span[8];
  for (int i = 0; i < 16; ++i) trace[i] = static_cast<uint8_t>(i);
  for (int i = 0; i < 8; ++i) span[i] = static_cast<uint8_t>(0xa0 + i);
  {
    ScopedLogSpan scope(trace, span);
    std::string line = format_line(Format::Json, Level::Info, "m", {}, kT);
    EXPECT_NE(line.find("\"trace_id\":\"000102030405060708090a0b0c0d0e0f\""), std::string::npos);
    EXPECT_NE(line.find("\"span_id\":\"a0a1a2a3a4a5a6a7\""), std::string::npos);
  }
  std::string after = format_line(Format::Json, Level::Info, "m", {}, kT);
  EXPECT_EQ(after.find("trace_id"), std::string::npos);
}

TEST(Log, TextLinesInsideASpanCarryIds) {
  uint8_t trace[16];
  uint8_t span[8];
  for (int i = 0; i < 16; ++i) trace[i] = static_cast<uint8_t>(0xf0 + i);
  for (int i = 0; i < 8; ++i) span[i] = static_cast<uint8_t>(i + 1);
  {
    ScopedLogSpan scope(trace, span);
    std::string line = format_line(Format::Text, Level::Info, "m", {{"id", 7}}, kT);
    EXPECT_EQ(line,
              "2023-11-14T22:13:20.123Z INFO  m id=7 trace_id=f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff "
              "span_id=0102030405060708\n");
  }
  std::string after = format_line(Format::Text, Level::Info, "m", {}, kT);
  EXPECT_EQ(after.find("trace_id"), std::string::npos);
  EXPECT_EQ(after.find("span_id"), std::string::npos);
}

TEST(Log, ParseLevelAndFormat) {
  Level l;
  EXPECT_TRUE(parse_level("debug", l));
  EXPECT_EQ(l, Level::Debug);
  EXPECT_FALSE(parse_level("loud", l));
  Format f;
  EXPECT_TRUE(parse_format("json", f));
  EXPECT_EQ(f, Format::Json);
  EXPECT_FALSE(parse_format("xml", f));
}

}  // namespace wstrace::log
