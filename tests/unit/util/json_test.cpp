#include "util/json.h"

#include <gtest/gtest.h>

namespace wstrace::json {

TEST(Json, EscapesQuotesBackslashesAndControls) {
  std::string out;
  append_string(out, std::string_view("a\"b\\c\n\x01\x1f\t\b\f\r", 12));
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\n\\u0001\\u001f\\t\\b\\f\\r\"");
  EXPECT_EQ(string_size(std::string_view("a\"b\\c\n\x01\x1f\t\b\f\r", 12)), out.size());
}

TEST(Json, KeepsUtf8AndAppends) {
  std::string out = "x";
  append_string(out, "é€😀");
  EXPECT_EQ(out, "x\"é€😀\"");
  append_string(out, "");
  EXPECT_EQ(out, "x\"é€😀\"\"\"");
}

}  // namespace wstrace::json
