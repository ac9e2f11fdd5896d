// The tokens PyJWT and pyca/cryptography made (data/vectors.h, from
// make_vectors.py), verified against KeySets loaded from the PEM and JWK Set
// files the same script wrote: every accepted algorithm, by kid and alone, and
// every rejection, each with its exact error code and, when accepted, the
// claims.
#include "data/vectors.h"

#include <gtest/gtest.h>

#include <map>
#include <ostream>
#include <string>

#include "auth/jwt.h"

namespace wstrace::auth {
namespace vectors {
// gtest names a failing parameter by this, not by its bytes.
void PrintTo(const Vector& v, std::ostream* os) { *os << v.name; }
}  // namespace vectors

namespace {

std::string data_path(const char* name) { return std::string(WSTRACE_AUTH_TEST_DATA) + "/" + name; }

const KeySet& keyset(const std::string& name) {
  static const std::map<std::string, KeySet> sets = [] {
    std::map<std::string, KeySet> m;
    auto put = [&m](const char* name, KeySetResult r) {
      if (!r.ok()) {
        ADD_FAILURE() << name << ": " << r.error;
        return;
      }
      m.emplace(name, std::move(*r.keys));
    };
    put("secret", key_set_from_secret(vectors::kSecret));
    put("jwks", load_jwks_file(data_path("jwks.json")));
    put("rsa_pem", load_pem_file(data_path("rsa.pem")));
    put("rsa_cert", load_pem_file(data_path("rsa_cert.pem")));
    put("rsa_pkcs1", load_pem_file(data_path("rsa_pkcs1.pem")));
    put("p256_pem", load_pem_file(data_path("p256.pem")));
    put("p384_pem", load_pem_file(data_path("p384.pem")));
    put("ed25519_pem", load_pem_file(data_path("ed25519.pem")));
    return m;
  }();
  static const KeySet none;
  auto it = sets.find(name);
  return it == sets.end() ? none : it->second;
}

class Vectors : public testing::TestWithParam<vectors::Vector> {};

TEST_P(Vectors, VerifyGivesTheExpectedResult) {
  const vectors::Vector& v = GetParam();
  const KeySet& keys = keyset(v.keyset);
  ASSERT_FALSE(keys.empty()) << v.keyset;
  VerifyOptions options;
  options.audience = v.audience;
  options.issuer = v.issuer;
  options.leeway_s = v.leeway;
  const VerifyResult r = verify(v.token, keys, options, v.now);
  EXPECT_EQ(error_code_name(r.code), v.code) << v.name << ": " << r.message;
  if (r.ok()) {
    EXPECT_TRUE(r.message.empty());
    EXPECT_EQ(r.claims.user, v.user);
    EXPECT_EQ(r.claims.exp, v.exp);
    EXPECT_EQ(r.claims.has_channels, v.has_channels);
    EXPECT_EQ(r.claims.channels, v.channels);
    EXPECT_EQ(r.claims.has_publish, v.has_publish);
    EXPECT_EQ(r.claims.publish, v.publish);
  } else {
    EXPECT_FALSE(r.message.empty());
    EXPECT_TRUE(r.claims.user.empty() && r.claims.channels.empty() && r.claims.publish.empty());
  }
}

INSTANTIATE_TEST_SUITE_P(PyJwt, Vectors, testing::ValuesIn(vectors::kVectors),
                         [](const testing::TestParamInfo<vectors::Vector>& info) {
                           std::string name = std::to_string(info.index) + "_";
                           for (const char* p = info.param.name; *p != '\0'; ++p) {
                             const char c = *p;
                             const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                                (c >= '0' && c <= '9');
                             if (alnum) {
                               name += c;
                             } else if (name.back() != '_') {
                               name += '_';
                             }
                           }
                           return name;
                         });

// Every algorithm we accept has an accepting vector by kid and one without:
// the table above cannot silently lose one.
TEST(VectorsCoverage, EveryAlgorithmAndEveryCode) {
  std::map<std::string, int> codes;
  for (const vectors::Vector& v : vectors::kVectors) ++codes[v.code];
  for (const char* code :
       {"ok", "malformed", "bad_signature", "unsupported_algorithm", "algorithm_mismatch",
        "unknown_kid", "expired", "not_yet_valid", "wrong_audience", "wrong_issuer", "bad_claim"}) {
    EXPECT_GT(codes[code], 0) << code;
  }
  for (const char* alg :
       {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"}) {
    for (const char* suffix : {" by kid", " without kid, single key", " flipped signature byte"}) {
      const std::string name = std::string(alg) + suffix;
      bool found = false;
      for (const vectors::Vector& v : vectors::kVectors) found = found || name == v.name;
      EXPECT_TRUE(found) << name;
    }
  }
}

}  // namespace
}  // namespace wstrace::auth
