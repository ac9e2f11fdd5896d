// The server's side of tokens: which key set the options give, and that a
// token is checked with the configured audience, issuer and leeway. The
// algorithms themselves are tested in tests/unit/auth.
#include "server/auth.h"

#include <gtest/gtest.h>

#include <fstream>

namespace wstrace::server {
namespace {

constexpr int64_t kNow = 1'700'000'000;

TEST(ServerAuth, NoKeyMeansNoAuthentication) {
  Config c;
  std::shared_ptr<const auth::KeySet> keys = std::make_shared<const auth::KeySet>();
  std::string error;
  ASSERT_TRUE(load_auth_keys(c, keys, error)) << error;
  EXPECT_EQ(keys, nullptr);
}

TEST(ServerAuth, SecretKeysAndClaims) {
  Config c;
  c.auth_secret = "s3cret";
  std::shared_ptr<const auth::KeySet> keys;
  std::string error;
  ASSERT_TRUE(load_auth_keys(c, keys, error)) << error;
  ASSERT_NE(keys, nullptr);
  const std::string token = auth::sign_hs256(
      R"({"sub":"alice","exp":1700000100,"channels":["room:*","user:{sub}"],"publish":["room:1"]})",
      "s3cret");
  AuthResult r = verify_token(token, *keys, c, kNow);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.user_id, "alice");
  EXPECT_EQ(r.exp, 1700000100);
  EXPECT_EQ(r.channels, (std::vector<std::string>{"room:*", "user:{sub}"}));
  EXPECT_EQ(r.publish, (std::vector<std::string>{"room:1"}));
  r = verify_token(auth::sign_hs256(R"({"sub":"a"})", "other"), *keys, c, kNow);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.code, "bad_signature");
  EXPECT_FALSE(r.error.empty());
}

TEST(ServerAuth, AudienceIssuerAndLeewayComeFromTheConfig) {
  Config c;
  c.auth_secret = "k";
  c.auth_audience = "chat";
  c.auth_issuer = "https://id.example";
  c.auth_leeway_ns = 30'000'000'000ull;
  std::shared_ptr<const auth::KeySet> keys;
  std::string error;
  ASSERT_TRUE(load_auth_keys(c, keys, error));
  auto tok = [](const std::string& claims) { return auth::sign_hs256(claims, "k"); };
  EXPECT_TRUE(verify_token(tok(R"({"aud":"chat","iss":"https://id.example"})"), *keys, c, kNow).ok);
  EXPECT_EQ(verify_token(tok(R"({"aud":"other","iss":"https://id.example"})"), *keys, c, kNow).code,
            "wrong_audience");
  EXPECT_EQ(verify_token(tok(R"({"aud":"chat","iss":"x"})"), *keys, c, kNow).code, "wrong_issuer");
  // Expired 20 s ago: within the 30 s leeway; 40 s ago: not.
  EXPECT_TRUE(verify_token(tok(R"({"aud":"chat","iss":"https://id.example","exp":1699999980})"),
                           *keys, c, kNow).ok);
  EXPECT_EQ(verify_token(tok(R"({"aud":"chat","iss":"https://id.example","exp":1699999960})"),
                         *keys, c, kNow).code,
            "expired");
}

TEST(ServerAuth, ABadKeyFileIsAnError) {
  Config c;
  c.auth_public_key = testing::TempDir() + "wstrace_no_such_key.pem";
  std::shared_ptr<const auth::KeySet> keys;
  std::string error;
  EXPECT_FALSE(load_auth_keys(c, keys, error));
  EXPECT_NE(error.find("wstrace_no_such_key.pem"), std::string::npos) << error;
  const std::string jwks = testing::TempDir() + "wstrace_bad.jwks";
  std::ofstream(jwks) << "{\"keys\":[{\"kty\":\"RSA\"}]}";
  c.auth_public_key.clear();
  c.auth_jwks = jwks;
  EXPECT_FALSE(load_auth_keys(c, keys, error));
  EXPECT_NE(error.find("wstrace_bad.jwks"), std::string::npos) << error;
  std::remove(jwks.c_str());
}

}  // namespace
}  // namespace wstrace::server
