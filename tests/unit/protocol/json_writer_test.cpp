#include "protocol/json_writer.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <random>
#include <string>

namespace wstrace::protocol {
namespace {

std::string json(std::string_view s) {
  Buffer b;
  append_json_string(b, s);
  EXPECT_EQ(b.size(), json_string_size(s)) << s;
  return std::string(b.view());
}

TEST(JsonWriter, Escapes) {
  EXPECT_EQ(json(""), "\"\"");
  EXPECT_EQ(json("plain"), "\"plain\"");
  EXPECT_EQ(json("\""), R"("\"")");
  EXPECT_EQ(json("\\"), R"("\\")");
  EXPECT_EQ(json("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(json(std::string_view("\0", 1)), R"("\u0000")");
  EXPECT_EQ(json("\x1f\x01"), R"("\u001f\u0001")");
  EXPECT_EQ(json("/"), "\"/\"");        // no need to escape the solidus
  EXPECT_EQ(json("\x7f"), "\"\x7f\"");  // DEL is allowed raw in JSON
  EXPECT_EQ(json("caf\xC3\xA9"), "\"caf\xC3\xA9\"");
}

TEST(JsonWriter, EveryControlCharacterRoundTrips) {
  for (int c = 0; c < 0x20; ++c) {
    std::string in = "a" + std::string(1, static_cast<char>(c)) + "b";
    std::string out = json(in);
    for (char ch : out) EXPECT_GE(static_cast<unsigned char>(ch), 0x20) << c;
    simdjson::dom::parser p;
    std::string_view back;
    ASSERT_EQ(p.parse(out).get_string().get(back), simdjson::SUCCESS) << out;
    EXPECT_EQ(back, in) << c;
  }
}

TEST(JsonWriter, RandomValidUtf8RoundTrips) {
  std::mt19937 rng(3);
  const std::string pieces[] = {"\"", "\\", "\n", "\x01", "x", "\xC3\xA9", "\xE2\x82\xAC",
                                "\xF0\x9F\x98\x80", "\x1f", " ", "\\u", "'"};
  for (int trial = 0; trial < 2000; ++trial) {
    std::string s;
    int n = static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) s += pieces[rng() % std::size(pieces)];
    Buffer b;
    b.append("[");
    append_json_string(b, s);
    b.append("]");
    simdjson::dom::parser p;
    simdjson::dom::element e;
    ASSERT_EQ(p.parse(std::string(b.view())).get(e), simdjson::SUCCESS) << b.view();
    ASSERT_EQ(std::string_view(e.at(0)), s);
  }
}

}  // namespace
}  // namespace wstrace::protocol
