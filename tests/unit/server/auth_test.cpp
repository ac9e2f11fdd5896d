// HS256 JWT verification (RFC 7519 / RFC 7515): a known token, signatures,
// exp/nbf, algorithms other than HS256, malformed tokens.
#include "server/auth.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wstrace::server {
namespace {

constexpr int64_t kNow = 1'700'000'000;
constexpr std::string_view kSecret = "s3cret";

std::string b64url(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

// header.payload.signature with the signature of another token.
std::string with_header(std::string_view header_json, std::string_view payload_json,
                        std::string_view sig = "") {
  return b64url(header_json) + "." + b64url(payload_json) + "." + std::string(sig);
}

TEST(Jwt, KnownToken) {
  // The HS256 example token of RFC 7519 tooling (jwt.io), secret
  // "your-256-bit-secret".
  const std::string token =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
      "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
      "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
  AuthResult r = verify_jwt(token, "your-256-bit-secret", kNow);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.user_id, "1234567890");
  // Our signer produces the same token for the same header and claims.
  EXPECT_EQ(sign_jwt(R"({"sub":"1234567890","name":"John Doe","iat":1516239022})",
                     "your-256-bit-secret"),
            token);
  EXPECT_FALSE(verify_jwt(token, "another-secret", kNow).ok);
}

TEST(Jwt, ValidTokens) {
  AuthResult r = verify_jwt(sign_jwt(R"({"sub":"alice"})", kSecret), kSecret, kNow);
  EXPECT_TRUE(r.ok);
  EXPECT_TRUE(r.error.empty());
  EXPECT_EQ(r.user_id, "alice");
  r = verify_jwt(sign_jwt(R"({"sub":42})", kSecret), kSecret, kNow);
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.user_id, "42");
  r = verify_jwt(sign_jwt(R"({"sub":18446744073709551615})", kSecret), kSecret, kNow);
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.user_id, "18446744073709551615");
  r = verify_jwt(sign_jwt("{}", kSecret), kSecret, kNow);
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.user_id, "");
  r = verify_jwt(sign_jwt(R"({"sub":"x","exp":1700000001,"nbf":1700000000})", kSecret), kSecret,
                 kNow);
  EXPECT_TRUE(r.ok) << r.error;
  // A long subject is cut to 256 bytes.
  r = verify_jwt(sign_jwt("{\"sub\":\"" + std::string(1000, 'u') + "\"}", kSecret), kSecret, kNow);
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.user_id.size(), 256u);
}

TEST(Jwt, BadSignature) {
  std::string t = sign_jwt(R"({"sub":"alice"})", kSecret);
  EXPECT_EQ(verify_jwt(t, "wrong", kNow).error, "bad token signature");
  // A flipped signature character.
  std::string flipped = t;
  flipped[flipped.size() - 5] = flipped[flipped.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(verify_jwt(flipped, kSecret, kNow).ok);
  // Claims changed after signing.
  std::string sig = t.substr(t.rfind('.') + 1);
  std::string forged = with_header(R"({"alg":"HS256","typ":"JWT"})", R"({"sub":"admin"})", sig);
  EXPECT_EQ(verify_jwt(forged, kSecret, kNow).error, "bad token signature");
  // Truncated or missing signature.
  EXPECT_FALSE(verify_jwt(t.substr(0, t.size() - 2), kSecret, kNow).ok);
  EXPECT_FALSE(verify_jwt(t.substr(0, t.rfind('.') + 1), kSecret, kNow).ok);
}

TEST(Jwt, SignatureMustBeCanonicalBase64url) {
  // 32 bytes are 43 characters whose last one carries 4 bits and 2 unused
  // bits: setting those must not give a second valid spelling of the token.
  std::string t = sign_jwt(R"({"sub":"alice"})", kSecret);
  ASSERT_TRUE(verify_jwt(t, kSecret, kNow).ok);
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t v = kAlphabet.find(t.back());
  ASSERT_EQ(v & 3, 0u);
  for (size_t low = 1; low < 4; ++low) {
    std::string other = t;
    other.back() = kAlphabet[v | low];
    EXPECT_FALSE(verify_jwt(other, kSecret, kNow).ok) << other;
  }
}

TEST(Jwt, ExpiryAndNotBefore) {
  auto verify = [](const std::string& claims) {
    return verify_jwt(sign_jwt(claims, kSecret), kSecret, kNow);
  };
  EXPECT_EQ(verify(R"({"exp":1699999999})").error, "token expired");
  EXPECT_EQ(verify(R"({"exp":1700000000})").error, "token expired");  // exp is exclusive
  EXPECT_TRUE(verify(R"({"exp":1700000001})").ok);
  EXPECT_TRUE(verify(R"({"exp":1.7000000015e9})").ok);  // NumericDate may be fractional
  EXPECT_EQ(verify(R"({"exp":1.6999999995e9})").error, "token expired");
  EXPECT_EQ(verify(R"({"nbf":1700000001})").error, "token not valid yet");
  EXPECT_TRUE(verify(R"({"nbf":1700000000})").ok);
  EXPECT_TRUE(verify(R"({"nbf":0})").ok);
  // Claims that are not NumericDates are refused, not ignored.
  EXPECT_FALSE(verify(R"({"exp":"1699999999"})").ok);
  EXPECT_FALSE(verify(R"({"exp":null})").ok);
  EXPECT_FALSE(verify(R"({"nbf":"later"})").ok);
  EXPECT_FALSE(verify(R"({"exp":[1]})").ok);
}

TEST(Jwt, OnlyHs256) {
  const std::string claims = R"({"sub":"alice"})";
  // alg "none" with an empty signature (the classic downgrade).
  EXPECT_EQ(verify_jwt(with_header(R"({"alg":"none"})", claims), kSecret, kNow).error,
            "unsupported token algorithm (HS256 only)");
  EXPECT_FALSE(verify_jwt(with_header(R"({"alg":"none","typ":"JWT"})", claims, "x"), kSecret, kNow).ok);
  for (const char* h : {R"({"alg":"HS512"})", R"({"alg":"RS256"})", R"({"alg":"hs256"})",
                        R"({"alg":"HS256 "})", R"({"typ":"JWT"})", R"({"alg":256})", "[]",
                        "not json", ""}) {
    // Even with a correct HS256 signature over that header.
    std::string signing = b64url(h) + "." + b64url(claims);
    std::string good = sign_jwt(claims, kSecret);
    EXPECT_FALSE(verify_jwt(signing + "." + good.substr(good.rfind('.') + 1), kSecret, kNow).ok) << h;
  }
}

TEST(Jwt, ClaimsMustBeAnObject) {
  for (const char* claims : {"[1,2]", R"("alice")", "42", "{", ""}) {
    AuthResult r = verify_jwt(sign_jwt(claims, kSecret), kSecret, kNow);
    EXPECT_FALSE(r.ok) << claims;
    EXPECT_EQ(r.error, "token claims are not a JSON object") << claims;
  }
}

TEST(Jwt, Malformed) {
  std::string t = sign_jwt(R"({"sub":"alice"})", kSecret);
  const std::vector<std::string> bads = {
      "", ".", "..", "abc", "a.b", t + ".extra", t.substr(0, t.find('.')), "Bearer " + t,
      t + "=", t + " ", "e30=.e30.", "e30.e30.a",  // a lone 6-bit group
      "e3+.e30.", "e30.e3/.", "e30.e30.\xff"};
  for (const std::string& bad : bads) {
    AuthResult r = verify_jwt(bad, kSecret, kNow);
    EXPECT_FALSE(r.ok) << bad;
    EXPECT_FALSE(r.error.empty()) << bad;
  }
  EXPECT_EQ(verify_jwt("abc", kSecret, kNow).error, "malformed token");
  EXPECT_EQ(verify_jwt("a.b.c.d", kSecret, kNow).error, "malformed token");
}

}  // namespace
}  // namespace wstrace::server
