// Base64url as JWS uses it: RFC 4648 vectors, round trips, and the strict
// decoder's refusals (padding, other alphabets, non-canonical spellings).
#include "auth/base64url.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace wstrace::auth {
namespace {

TEST(Base64url, Rfc4648Vectors) {
  // RFC 4648 §10, without the padding.
  const std::pair<const char*, const char*> cases[] = {
      {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};
  for (auto [plain, encoded] : cases) {
    EXPECT_EQ(base64url_encode(plain), encoded);
    std::string out;
    ASSERT_TRUE(base64url_decode(encoded, out)) << encoded;
    EXPECT_EQ(out, plain);
  }
  // The two characters that differ from standard base64.
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
}

TEST(Base64url, RoundTripsEveryLength) {
  std::mt19937 rng(7);
  for (size_t n = 0; n < 100; ++n) {
    std::string bytes(n, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    std::string out;
    ASSERT_TRUE(base64url_decode(base64url_encode(bytes), out)) << n;
    EXPECT_EQ(out, bytes);
  }
}

TEST(Base64url, RefusesWhatIsNotCanonicalBase64url) {
  std::string out = "stale";
  for (const char* bad : {"Zg==", "Zm8=", "Zm9v+A", "Zm9v/A", "Zm 9v", "Zm9v\n", "Z", "Zm9vY",
                          "Zh",      // 'h' sets one of the 4 unused bits after "f"
                          "Zm9"}) {  // '9' sets unused bits after "fo"
    EXPECT_FALSE(base64url_decode(bad, out)) << bad;
  }
  EXPECT_FALSE(base64url_decode(std::string_view("Zg\0", 3), out));
  EXPECT_FALSE(base64url_decode("\xff\xff", out));
}

}  // namespace
}  // namespace wstrace::auth
