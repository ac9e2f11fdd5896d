// verify() beyond the vectors: sign_hs256 against a known token, the exact
// messages and codes the server will show, channel patterns, clock
// arithmetic at the edges, every truncation of real tokens, OpenSSL's error
// queue left empty, and one KeySet shared by several threads.
#include "auth/jwt.h"

#include <gtest/gtest.h>
#include <openssl/err.h>

#include <atomic>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "auth/base64url.h"
#include "data/vectors.h"

namespace wstrace::auth {
namespace {

constexpr int64_t kNow = 1'700'000'000;

KeySet secret_set(std::string_view secret = "s3cret", std::string_view kid = {}) {
  return *key_set_from_secret(secret, kid).keys;
}

VerifyResult check(const std::string& claims, const VerifyOptions& o = {}, int64_t now = kNow) {
  return verify(sign_hs256(claims, "s3cret"), secret_set(), o, now);
}

std::string data_path(const char* name) { return std::string(WSTRACE_AUTH_TEST_DATA) + "/" + name; }

const vectors::Vector& vector(std::string_view name) {
  for (const vectors::Vector& v : vectors::kVectors) {
    if (v.name == name) return v;
  }
  ADD_FAILURE() << "no vector " << name;
  return vectors::kVectors[0];
}

TEST(SignHs256, MatchesAKnownToken) {
  // The HS256 example of jwt.io, secret "your-256-bit-secret".
  const std::string token =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
      "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
      "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
  EXPECT_EQ(sign_hs256(R"({"sub":"1234567890","name":"John Doe","iat":1516239022})",
                       "your-256-bit-secret"),
            token);
  VerifyResult r = verify(token, secret_set("your-256-bit-secret"), {}, kNow);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(r.claims.user, "1234567890");
  EXPECT_EQ(r.claims.exp, 0);
  EXPECT_FALSE(r.claims.has_channels);
  EXPECT_EQ(verify(token, secret_set("other"), {}, kNow).code, ErrorCode::bad_signature);
}

TEST(SignHs256, KidIsEscapedAndSelectsTheKey) {
  const std::string kid = "a\"b\\c";
  const std::string token = sign_hs256(R"({"sub":"x"})", "k2", kid);
  std::string header;
  ASSERT_TRUE(base64url_decode(token.substr(0, token.find('.')), header));
  EXPECT_EQ(header, R"({"alg":"HS256","typ":"JWT","kid":"a\"b\\c"})");
  KeySet set = secret_set("k1", "first");
  ASSERT_EQ(set.merge(secret_set("k2", kid)), "");
  VerifyResult r = verify(token, set, {}, kNow);
  EXPECT_TRUE(r.ok()) << r.message;
  // Without a kid, two HS keys: which one is not guessed.
  r = verify(sign_hs256(R"({"sub":"x"})", "k2"), set, {}, kNow);
  EXPECT_EQ(r.code, ErrorCode::unknown_kid);
  EXPECT_EQ(r.message, "token has no key id and 2 keys can verify HS256");
}

TEST(SignHs256, KidNoKeyHasFallsToTheOneKeyWithoutKid) {
  // A single-key server (a secret or a PEM) verifies whatever kid the issuer
  // stamps; the signature still decides.
  const std::string token = sign_hs256(R"({"sub":"x"})", "s3cret", "issuer-key-7");
  VerifyResult r = verify(token, secret_set(), {}, kNow);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(r.claims.user, "x");
  EXPECT_EQ(verify(sign_hs256("{}", "other", "issuer-key-7"), secret_set(), {}, kNow).code,
            ErrorCode::bad_signature);
  // A key with that kid is still the only one tried, and a set whose keys
  // all have kids does not guess.
  KeySet set = secret_set("s3cret");
  ASSERT_EQ(set.merge(secret_set("k2", "issuer-key-7")), "");
  EXPECT_EQ(verify(token, set, {}, kNow).code, ErrorCode::bad_signature);
  EXPECT_TRUE(verify(sign_hs256("{}", "k2", "issuer-key-7"), set, {}, kNow).ok());
  EXPECT_TRUE(verify(sign_hs256("{}", "s3cret", "other-kid"), set, {}, kNow).ok());
  // Two kid-less keys that can verify it: not guessed either.
  KeySet two = secret_set("a");
  ASSERT_EQ(two.merge(*load_pem_file(data_path("p256.pem")).keys), "");
  EXPECT_TRUE(verify(sign_hs256("{}", "a", "z"), two, {}, kNow).ok());
  KeySet hs2 = secret_set("a");
  ASSERT_EQ(hs2.merge(secret_set("b", "kb")), "");
  ASSERT_EQ(hs2.merge(secret_set("c")), "");
  r = verify(sign_hs256("{}", "a", "z"), hs2, {}, kNow);
  EXPECT_EQ(r.code, ErrorCode::unknown_kid);
  EXPECT_EQ(r.message, "unknown key id 'z'");
}

TEST(Verify, CodeNamesAreStable) {
  const std::pair<ErrorCode, const char*> names[] = {
      {ErrorCode::none, "ok"},
      {ErrorCode::malformed, "malformed"},
      {ErrorCode::bad_signature, "bad_signature"},
      {ErrorCode::unsupported_algorithm, "unsupported_algorithm"},
      {ErrorCode::algorithm_mismatch, "algorithm_mismatch"},
      {ErrorCode::unknown_kid, "unknown_kid"},
      {ErrorCode::expired, "expired"},
      {ErrorCode::not_yet_valid, "not_yet_valid"},
      {ErrorCode::wrong_audience, "wrong_audience"},
      {ErrorCode::wrong_issuer, "wrong_issuer"},
      {ErrorCode::bad_claim, "bad_claim"},
  };
  for (auto [code, name] : names) EXPECT_EQ(error_code_name(code), name);
}

TEST(Verify, Messages) {
  auto message = [](const std::string& claims, const VerifyOptions& o = {}) {
    return check(claims, o).message;
  };
  EXPECT_EQ(message(R"({"channels":"room:*"})"),
            "token claim 'channels' must be an array of strings");
  EXPECT_EQ(message(R"({"publish":[1]})"), "token claim 'publish' must be an array of strings");
  EXPECT_EQ(message(R"({"channels":["a b"]})"),
            "token claim 'channels' has an invalid channel pattern 'a b' (1..256 bytes of A-Z a-z "
            "0-9 _ . : / - * ? "
            "and {sub})");
  EXPECT_EQ(message(R"({"sub":true})"), "token claim 'sub' must be a string or an integer");
  EXPECT_EQ(message(R"({"exp":"soon"})"), "token claim 'exp' must be a number");
  EXPECT_EQ(message(R"({"aud":{}})"), "token claim 'aud' must be a string or an array of strings");
  EXPECT_EQ(message(R"({"iss":[]})"), "token claim 'iss' must be a string");
  EXPECT_EQ(message(R"({"exp":1699999990})"),
            "token expired at 1699999990 (now 1700000000, leeway 0 s)");
  EXPECT_EQ(message(R"({"nbf":1700000005})", {"", "", 2}),
            "token not valid before 1700000005 (now 1700000000, leeway 2 s)");
  EXPECT_EQ(message(R"({"aud":"b"})", {"a", "", 0}), "token audience does not include 'a'");
  EXPECT_EQ(message(R"({})", {"a", "", 0}), "token has no audience ('a' expected)");
  EXPECT_EQ(message(R"({"aud":"a"})"), "token has an audience but none is expected");
  EXPECT_EQ(message(R"({"iss":"x"})", {"", "y", 0}), "token issuer 'x' is not 'y'");
  EXPECT_EQ(message(R"({})", {"", "y", 0}), "token has no issuer ('y' expected)");
  EXPECT_EQ(verify(sign_hs256("{}", "s3cret", "nope"), secret_set("s3cret", "mine"), {}, kNow)
                .message,
            "unknown key id 'nope'");
  // Text from the token is made printable and short in messages.
  const std::string kid = "\x01" + std::string(100, 'k');
  VerifyResult r = verify(sign_hs256("{}", "s3cret", kid), secret_set("s3cret", "mine"), {}, kNow);
  EXPECT_EQ(r.code, ErrorCode::unknown_kid);
  EXPECT_EQ(r.message, "unknown key id '?" + std::string(63, 'k') + "...'");
  r = verify(base64url_encode(R"({"alg":"none"})") + "." + base64url_encode("{}") + ".",
             secret_set(), {}, kNow);
  EXPECT_EQ(r.code, ErrorCode::unsupported_algorithm);
  EXPECT_EQ(r.message, "unsupported token algorithm 'none'");
  r = verify(vector("RS256 token naming the P-256 key").token,
             *load_jwks_file(data_path("jwks.json")).keys, {}, kNow);
  EXPECT_EQ(r.message, "key 'ec-256' (EC P-256) cannot verify RS256");
  r = verify(vector("RS384 token naming the RS256-only key").token,
             *load_jwks_file(data_path("jwks.json")).keys, {}, kNow);
  EXPECT_EQ(r.message, "key 'rsa-2' (RSA, RS256 only) cannot verify RS384");
  r = verify(vector("ES256 signature in DER instead of r||s").token,
             *load_jwks_file(data_path("jwks.json")).keys, {}, kNow);
  EXPECT_EQ(r.message.find("ES256 signature must be 64 bytes, not 7"), 0u) << r.message;
  r = verify(vector("HS256 token against an EC key").token,
             *load_pem_file(data_path("p256.pem")).keys, {}, kNow);
  EXPECT_EQ(r.message, "no configured key can verify HS256");
}

TEST(Verify, ChannelPatterns) {
  for (const char* good :
       {"a", "room:*", "user:{sub}", "{sub}", "{sub}{sub}", "x/y.z-w_v:?", "*"}) {
    EXPECT_TRUE(is_channel_pattern(good)) << good;
  }
  for (const char* bad : {"", "a b", "{", "}", "{sub", "sub}", "{SUB}", "{user}", "a\tb", "é",
                          "room:#", "a,b", "\"", "{su}b"}) {
    EXPECT_FALSE(is_channel_pattern(bad)) << bad;
  }
  EXPECT_TRUE(is_channel_pattern(std::string(256, 'x')));
  EXPECT_FALSE(is_channel_pattern(std::string(257, 'x')));
  EXPECT_FALSE(is_channel_pattern(std::string_view("a\0b", 3)));
  VerifyResult r = check(R"({"sub":"bob","channels":["room:*","user:{sub}"],"publish":[]})");
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(r.claims.channels, (std::vector<std::string>{"room:*", "user:{sub}"}));
  EXPECT_TRUE(r.claims.has_publish);
  EXPECT_TRUE(r.claims.publish.empty());
}

TEST(Verify, ClockArithmeticAtTheEdges) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  // A negative leeway counts as none.
  EXPECT_EQ(check(R"({"exp":1700000001})", {"", "", -100}).code, ErrorCode::none);
  EXPECT_EQ(check(R"({"nbf":1700000000})", {"", "", -100}).code, ErrorCode::none);
  // Huge leeways and times saturate rather than wrap.
  EXPECT_EQ(check(R"({"exp":9223372036854775807})", {"", "", kMax}).code, ErrorCode::none);
  EXPECT_EQ(check(R"({"exp":18446744073709551615})").code, ErrorCode::none);
  EXPECT_EQ(check(R"({"exp":18446744073709551615})").claims.exp, kMax);
  EXPECT_EQ(check(R"({"exp":-9223372036854775808})", {"", "", kMax}).code, ErrorCode::expired);
  EXPECT_EQ(check(R"({"exp":-9223372036854775808})").code, ErrorCode::expired);
  EXPECT_EQ(check(R"({"exp":-1e300})", {"", "", kMax}).code, ErrorCode::expired);
  EXPECT_EQ(check(R"({"exp":1e300})").code, ErrorCode::none);
  EXPECT_EQ(check(R"({"nbf":1e300})").code, ErrorCode::not_yet_valid);
  EXPECT_EQ(check(R"({"nbf":1e300})", {"", "", kMax}).code, ErrorCode::none);
  EXPECT_EQ(check(R"({"nbf":-1e300})").code, ErrorCode::none);
  EXPECT_EQ(check(R"({"nbf":1700000001})", {"", "", kMax}, kMax).code, ErrorCode::none);
  EXPECT_EQ(check(R"({"exp":1700000001})", {}, kMin).code, ErrorCode::none);
  EXPECT_EQ(check(R"({"exp":1700000001})", {}, kMax).code, ErrorCode::expired);
  EXPECT_EQ(check(R"({"exp":1.7e9,"nbf":1.7e9,"iat":1.7e9})", {"", "", 1}).code, ErrorCode::none);
  // A number simdjson cannot hold is not JSON it accepts.
  EXPECT_EQ(check(R"({"exp":1e400})").code, ErrorCode::malformed);
  EXPECT_EQ(check(R"({"exp":123456789012345678901234567890})").code, ErrorCode::malformed);
}

TEST(Verify, SubIntegers) {
  EXPECT_EQ(check(R"({"sub":-5})").claims.user, "-5");
  EXPECT_EQ(check(R"({"sub":18446744073709551615})").claims.user, "18446744073709551615");
  EXPECT_EQ(check(R"({"sub":0})").claims.user, "0");
  EXPECT_EQ(check(R"({"sub":1e3})").code, ErrorCode::bad_claim);
  EXPECT_EQ(check(R"({"sub":""})").claims.user, "");
}

TEST(Verify, EveryTruncationOfRealTokensIsRefused) {
  const KeySet jwks = *load_jwks_file(data_path("jwks.json")).keys;
  const VerifyOptions o{vectors::kAudience, vectors::kIssuer, 0};
  for (const char* name : {"HS256 by kid", "RS256 by kid", "PS256 by kid", "ES256 by kid",
                           "ES384 by kid", "EdDSA by kid"}) {
    const std::string& token = vector(name).token;
    ASSERT_TRUE(verify(token, jwks, o, vectors::kNow).ok()) << name;
    for (size_t n = 0; n < token.size(); ++n) {
      VerifyResult r = verify(std::string_view(token).substr(0, n), jwks, o, vectors::kNow);
      ASSERT_FALSE(r.ok()) << name << " cut at " << n;
      ASSERT_FALSE(r.message.empty());
      ASSERT_EQ(ERR_peek_error(), 0u) << name << " cut at " << n;
    }
    // Every single-character change of the signature segment, too.
    const size_t sig = token.rfind('.') + 1;
    for (size_t i = sig; i < token.size(); ++i) {
      std::string t = token;
      t[i] = t[i] == 'A' ? 'B' : 'A';
      ASSERT_FALSE(verify(t, jwks, o, vectors::kNow).ok()) << name << " changed at " << i;
      ASSERT_EQ(ERR_peek_error(), 0u);
    }
  }
}

TEST(Verify, GarbageNeverCrashes) {
  const KeySet jwks = *load_jwks_file(data_path("jwks.json")).keys;
  const std::string inputs[] = {
      std::string(100000, '.'),
      std::string(70000, 'A'),
      "..",
      "...",
      "a..b",
      ".a.",
      "\xff\xfe.\x00.x",
      base64url_encode("{") + ".e30.",
      base64url_encode(std::string(1000, '[')) + ".e30.",
      base64url_encode(R"({"alg":"ES256","kid":"ec-256"})") + ".e30." +
          base64url_encode(std::string(64, '\xff')),
      base64url_encode(R"({"alg":"ES384","kid":"ec-384"})") + ".e30." +
          base64url_encode(std::string(96, '\0')),
      base64url_encode(R"({"alg":"RS256","kid":"rsa-1"})") + ".e30." +
          base64url_encode(std::string(256, '\xff')),
      base64url_encode(R"({"alg":"EdDSA"})") + ".e30." + base64url_encode(std::string(64, '\xff'))};
  for (const std::string& in : inputs) {
    VerifyResult r = verify(in, jwks, {}, kNow);
    EXPECT_FALSE(r.ok());
    EXPECT_FALSE(r.message.empty());
    EXPECT_EQ(ERR_peek_error(), 0u);
  }
  // An empty KeySet verifies nothing.
  EXPECT_EQ(verify(sign_hs256("{}", "x"), KeySet{}, {}, kNow).code, ErrorCode::algorithm_mismatch);
}

TEST(Verify, OneKeySetManyThreads) {
  const KeySet jwks = *load_jwks_file(data_path("jwks.json")).keys;
  const VerifyOptions o{vectors::kAudience, vectors::kIssuer, 0};
  std::vector<std::string> good, bad;
  for (const char* alg : {"HS256", "HS512", "RS256", "PS256", "ES256", "ES384", "EdDSA"}) {
    good.push_back(vector(std::string(alg) + " by kid").token);
    bad.push_back(vector(std::string(alg) + " flipped signature byte").token);
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const size_t k = static_cast<size_t>(i + t) % good.size();
        if (!verify(good[k], jwks, o, vectors::kNow).ok()) ++failures;
        if (verify(bad[k], jwks, o, vectors::kNow).code != ErrorCode::bad_signature) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace wstrace::auth
