// UTF-8 validation (RFC 3629): the boundary code points, overlongs,
// surrogates, > U+10FFFF, truncation; incremental feeding that fails at the
// first byte that cannot lead to valid text; and a randomised cross-check
// against a reference decoder written here from the definition.
#include "ws/utf8.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <random>
#include <string>

namespace wstrace::ws {
namespace {

const uint8_t* u8(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Index of the first byte at which no continuation can make `s` valid, or
// nullopt if `s` is a valid prefix. Decodes by code point value.
std::optional<size_t> reference_first_bad(const std::string& s, bool* complete) {
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  size_t i = 0;
  *complete = true;
  while (i < s.size()) {
    auto b = static_cast<uint8_t>(s[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((b & 0xE0) == 0xC0) {
      len = 2, cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3, cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4, cp = b & 0x07;
    } else {
      return i;  // a continuation byte or F8..FF cannot start a character
    }
    // After each byte of the sequence: can any completion of what we have be
    // a valid scalar value (>= the minimum for its length, <= U+10FFFF, not
    // a surrogate)? If not, this byte is the first bad one.
    for (int k = 0; k < len; ++k) {
      if (k > 0) {
        if (i + k >= s.size()) {
          *complete = false;  // truncated but still possibly valid
          return std::nullopt;
        }
        auto c = static_cast<uint8_t>(s[i + k]);
        if ((c & 0xC0) != 0x80) return i + k;
        cp = (cp << 6) | (c & 0x3F);
      }
      const int rest = len - 1 - k;
      const uint32_t lo = cp << (6 * rest);
      const uint32_t hi = lo | ((1u << (6 * rest)) - 1);
      const uint32_t a = std::max(lo, kMin[len]);
      const uint32_t z = std::min(hi, 0x10FFFFu);
      const bool possible = a <= z && !(a >= 0xD800 && z <= 0xDFFF);
      if (!possible) return i + k;
    }
    i += len;
  }
  return std::nullopt;
}

struct Case {
  std::string bytes;
  bool valid;
  size_t first_bad = 0;  // for invalid complete-able cases: where the validator must fail
};

std::vector<Case> cases() {
  return {
      {"", true},
      {"Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!", true},
      {"\x7F", true},
      {"\xC2\x80", true},                  // U+0080
      {"\xDF\xBF", true},                  // U+07FF
      {"\xE0\xA0\x80", true},              // U+0800
      {"\xED\x9F\xBF", true},              // U+D7FF
      {"\xEE\x80\x80", true},              // U+E000
      {"\xEF\xBF\xBF", true},              // U+FFFF
      {"\xF0\x90\x80\x80", true},          // U+10000
      {"\xF4\x8F\xBF\xBF", true},          // U+10FFFF
      {"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5", true},  // κόσμε
      {"\x80", false, 0},                  // lone continuation
      {"ab\xBF", false, 2},
      {"\xC0\x80", false, 0},              // overlong NUL
      {"\xC1\xBF", false, 0},              // overlong
      {"\xE0\x9F\xBF", false, 1},          // overlong U+07FF
      {"\xF0\x8F\xBF\xBF", false, 1},      // overlong U+FFFF
      {"\xED\xA0\x80", false, 1},          // U+D800 surrogate
      {"\xED\xBF\xBF", false, 1},          // U+DFFF surrogate
      {"\xF4\x90\x80\x80", false, 1},      // U+110000
      {"\xF5\x80\x80\x80", false, 0},
      {"\xFF", false, 0},
      {"\xFE", false, 0},
      {"\xC2\x41", false, 1},              // missing continuation
      {"\xE1\x80\x41", false, 2},
      {"\xF1\x80\x80\xC0", false, 3},
      {"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80" "edited", false, 12},
  };
}

TEST(Utf8, WholeBufferCases) {
  for (const auto& c : cases()) {
    EXPECT_EQ(is_valid_utf8(u8(c.bytes), c.bytes.size()), c.valid) << testing::PrintToString(c.bytes);
    Utf8Validator v;
    bool fed = v.feed(u8(c.bytes), c.bytes.size());
    EXPECT_EQ(fed && v.complete(), c.valid) << testing::PrintToString(c.bytes);
  }
}

TEST(Utf8, FailsAtTheFirstImpossibleByte) {
  for (const auto& c : cases()) {
    if (c.valid) continue;
    Utf8Validator v;
    for (size_t i = 0; i < c.bytes.size(); ++i) {
      bool ok = v.feed(u8(c.bytes) + i, 1);
      if (i < c.first_bad) {
        ASSERT_TRUE(ok) << testing::PrintToString(c.bytes) << " byte " << i;
      } else {
        ASSERT_FALSE(ok) << testing::PrintToString(c.bytes) << " byte " << i;
        break;
      }
    }
    bool complete;
    EXPECT_EQ(reference_first_bad(c.bytes, &complete), c.first_bad) << testing::PrintToString(c.bytes);
  }
}

TEST(Utf8, TruncatedSequencesAreIncompleteNotInvalid) {
  for (std::string s : {"\xC2", "\xE0\xA0", "\xF0\x90\x80", "a\xF4\x8F\xBF", "\xE1"}) {
    Utf8Validator v;
    EXPECT_TRUE(v.feed(u8(s), s.size())) << testing::PrintToString(s);
    EXPECT_FALSE(v.complete());
    EXPECT_FALSE(is_valid_utf8(u8(s), s.size()));
  }
}

TEST(Utf8, EverySplitOfAValidStringIsValid) {
  // A string long enough to use the 8-byte ASCII fast path around the splits.
  std::string s = "ascii ascii ascii \xF0\x9F\x98\x80 more ascii text \xE2\x82\xAC\xC3\xA9 end of it";
  for (size_t a = 0; a <= s.size(); ++a) {
    for (size_t b = a; b <= s.size(); b += 3) {
      Utf8Validator v;
      ASSERT_TRUE(v.feed(u8(s), a));
      ASSERT_TRUE(v.feed(u8(s) + a, b - a));
      ASSERT_TRUE(v.feed(u8(s) + b, s.size() - b));
      ASSERT_TRUE(v.complete()) << a << "," << b;
    }
  }
}

TEST(Utf8, StaysFailedAfterAnError) {
  Utf8Validator v;
  std::string bad = "\xFF";
  std::string good = "abc";
  EXPECT_FALSE(v.feed(u8(bad), 1));
  EXPECT_FALSE(v.complete());
  EXPECT_FALSE(v.feed(u8(good), good.size()));
  EXPECT_FALSE(v.feed(u8(good), 0));
  v.reset();
  EXPECT_TRUE(v.feed(u8(good), good.size()));
  EXPECT_TRUE(v.complete());
}

// Strings built from random code points (valid and not), random bytes and
// ASCII runs, checked against the reference at random split points.
TEST(Utf8, RandomisedAgainstReference) {
  std::mt19937 rng(12345);
  auto encode = [](uint32_t cp, std::string& out) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  };
  for (int trial = 0; trial < 20000; ++trial) {
    std::string s;
    int parts = static_cast<int>(rng() % 8);
    for (int p = 0; p < parts; ++p) {
      switch (rng() % 6) {
        case 0: s.append(rng() % 20, 'a'); break;
        case 1: encode(rng() % 0x110000, s); break;  // includes surrogates (invalid)
        case 2: encode(0xD7F0 + rng() % 0x820, s); break;  // around the surrogates
        case 3: s.push_back(static_cast<char>(rng())); break;
        case 4: encode(0x10FFF0 + rng() % 0x20, s); break;  // around the top
        case 5: {  // a truncated sequence
          std::string t;
          encode(0x80 + rng() % 0x10FF80, t);
          s += t.substr(0, 1 + rng() % t.size());
          break;
        }
      }
    }
    bool complete = true;
    auto bad = reference_first_bad(s, &complete);
    const bool valid = !bad && complete;
    ASSERT_EQ(is_valid_utf8(u8(s), s.size()), valid) << testing::PrintToString(s);
    Utf8Validator v;
    size_t split = s.empty() ? 0 : rng() % (s.size() + 1);
    bool ok1 = v.feed(u8(s), split);
    bool ok2 = ok1 && v.feed(u8(s) + split, s.size() - split);
    ASSERT_EQ(ok2 && v.complete(), valid) << testing::PrintToString(s);
    if (bad) {
      // Fed byte by byte, the validator fails exactly at the reference's byte.
      Utf8Validator w;
      size_t failed_at = s.size();
      for (size_t i = 0; i < s.size(); ++i) {
        if (!w.feed(u8(s) + i, 1)) {
          failed_at = i;
          break;
        }
      }
      ASSERT_EQ(failed_at, *bad) << testing::PrintToString(s);
    } else {
      ASSERT_TRUE(ok2);
      ASSERT_EQ(v.complete(), complete);
    }
  }
}

}  // namespace
}  // namespace wstrace::ws
