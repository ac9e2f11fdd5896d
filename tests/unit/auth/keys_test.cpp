// Building KeySets: the PEM and JWK Set files make_vectors.py wrote load as
// the keys they are; every refusal names the file, the key and the problem;
// well-formed keys we do not verify with are left out and listed; building
// from several sources; the algorithm/key-type table.
#include "auth/keys.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "auth/jwt.h"
#include "data/vectors.h"

namespace wstrace::auth {
namespace {

std::string data_path(const char* name) { return std::string(WSTRACE_AUTH_TEST_DATA) + "/" + name; }

std::string read(const char* name) {
  std::ifstream in(data_path(name), std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A JWK Set of these JWKs.
std::string jwks(std::initializer_list<std::string> keys) {
  std::string out = R"({"keys":[)";
  bool first = true;
  for (const std::string& k : keys) {
    if (!first) out += ',';
    out += k;
    first = false;
  }
  return out + "]}";
}

// `jwk` with the member `name` set to the JSON `value` (appended last).
std::string with(std::string jwk, const std::string& name, const std::string& value) {
  jwk.pop_back();  // '}'
  return jwk + ", \"" + name + "\": " + value + "}";
}

// `jwk` (as json.dumps writes it: `{"a": 1, "b": "x"}`) without member `name`.
std::string without(std::string jwk, const std::string& name) {
  const std::string key = "\"" + name + "\": ";
  const size_t at = jwk.find(key);
  if (at == std::string::npos) return jwk;
  size_t end = at + key.size();  // the value: a string, an array of strings, or a bare token
  if (jwk[end] == '"') {
    end = jwk.find('"', end + 1) + 1;
  } else if (jwk[end] == '[') {
    end = jwk.find(']', end) + 1;
  } else {
    end = jwk.find_first_of(",}", end);
  }
  if (jwk[end] == ',') {
    jwk.erase(at, end + 2 - at);  // `"name": v, `
  } else {
    const size_t comma = jwk.rfind(',', at);
    jwk.erase(comma, end - comma);  // `, "name": v`
  }
  return jwk;
}

void expect_error(const KeySetResult& r, std::initializer_list<std::string> parts) {
  ASSERT_FALSE(r.ok());
  for (const std::string& part : parts) {
    EXPECT_NE(r.error.find(part), std::string::npos) << "'" << part << "' not in: " << r.error;
  }
}

TEST(KeyTypes, WhichAlgorithmEachKeyVerifies) {
  using A = Alg;
  const std::pair<KeyType, std::vector<Alg>> table[] = {
      {KeyType::hmac, {A::HS256, A::HS384, A::HS512}},
      {KeyType::rsa, {A::RS256, A::RS384, A::RS512, A::PS256}},
      {KeyType::ec_p256, {A::ES256}},
      {KeyType::ec_p384, {A::ES384}},
      {KeyType::ed25519, {A::EdDSA}},
  };
  for (const auto& [type, allowed] : table) {
    for (int a = 0; a <= static_cast<int>(Alg::EdDSA); ++a) {
      const Alg alg = static_cast<Alg>(a);
      const bool want = std::find(allowed.begin(), allowed.end(), alg) != allowed.end();
      EXPECT_EQ(key_type_allows(type, alg), want) << key_type_name(type) << " " << alg_name(alg);
    }
  }
}

TEST(KeyTypes, AlgorithmNamesAreExact) {
  for (int a = 0; a <= static_cast<int>(Alg::EdDSA); ++a) {
    const Alg alg = static_cast<Alg>(a);
    EXPECT_EQ(parse_alg(alg_name(alg)), alg);
  }
  for (const char* bad : {"none", "None", "NONE", "", "hs256", "HS256 ", "Ed25519", "ES512",
                          "PS384", "PS512", "ES256K", "RS1"}) {
    EXPECT_FALSE(parse_alg(bad).has_value()) << bad;
  }
}

TEST(Pem, EveryFormLoads) {
  const std::pair<const char*, KeyType> files[] = {
      {"rsa.pem", KeyType::rsa},       {"rsa_cert.pem", KeyType::rsa},
      {"rsa_pkcs1.pem", KeyType::rsa}, {"p256.pem", KeyType::ec_p256},
      {"p384.pem", KeyType::ec_p384},  {"ed25519.pem", KeyType::ed25519},
  };
  for (auto [file, type] : files) {
    KeySetResult r = load_pem_file(data_path(file));
    ASSERT_TRUE(r.ok()) << file << ": " << r.error;
    EXPECT_TRUE(r.error.empty());
    ASSERT_EQ(r.keys->size(), 1u);
    const Key& k = r.keys->keys()[0];
    EXPECT_EQ(k.type, type) << file;
    EXPECT_TRUE(k.kid.empty());
    EXPECT_FALSE(k.alg.has_value());
    EXPECT_TRUE(k.secret.empty());
    EXPECT_NE(k.pkey, nullptr);
    EXPECT_EQ(k.origin, data_path(file));
  }
}

TEST(Pem, TakesTheKidItIsGiven) {
  KeySetResult r = load_pem_file(data_path("p256.pem"), "ec-256");
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_NE(r.keys->find("ec-256"), nullptr);
  EXPECT_EQ(r.keys->find("ec-256")->type, KeyType::ec_p256);
  EXPECT_EQ(r.keys->find("other"), nullptr);
  EXPECT_EQ(r.keys->find(""), nullptr);
}

TEST(Pem, Refusals) {
  expect_error(load_pem_file(data_path("rsa1024.pem")),
               {data_path("rsa1024.pem"), "1024 bits", "2048"});
  expect_error(load_pem_file(data_path("p521.pem")), {"p521.pem", "secp521r1", "P-256 or P-384"});
  expect_error(load_pem_file(data_path("ed448.pem")), {"ed448.pem", "Ed448"});
  expect_error(load_pem_file(data_path("missing.pem")),
               {"cannot open", "missing.pem", "No such file"});
  expect_error(load_pem_file(WSTRACE_AUTH_TEST_DATA), {"cannot read", WSTRACE_AUTH_TEST_DATA});
  expect_error(load_pem_file(data_path("jwks.json")), {"jwks.json", "no PEM block"});
  // A chain, or two keys: which one would be meant is not ours to guess.
  expect_error(parse_pem(read("rsa_cert.pem") + read("p256.pem"), "chain.pem"),
               {"chain.pem", "2 PEM blocks"});
  expect_error(
      parse_pem(
          "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
          "key.pem"),
      {"key.pem", "private key"});
  expect_error(
      parse_pem("-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----\n", "k.pem"),
      {"private key"});
  expect_error(
      parse_pem("-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n",
                "x.pem"),
      {"x.pem", "cannot read the PUBLIC KEY"});
  expect_error(parse_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "c.pem"),
               {"c.pem", "cannot read the CERTIFICATE"});
  expect_error(
      parse_pem("-----BEGIN DH PARAMETERS-----\nAAAA\n-----END DH PARAMETERS-----\n", "d.pem"),
      {"d.pem", "'DH PARAMETERS'"});
  expect_error(parse_pem("", "empty.pem"), {"empty.pem", "no PEM block"});
  // A truncated file.
  std::string rsa = read("rsa.pem");
  expect_error(parse_pem(rsa.substr(0, rsa.size() / 2), "cut.pem"), {"cut.pem"});
}

TEST(Jwks, TheFileLoadsAsWritten) {
  KeySetResult r = load_jwks_file(data_path("jwks.json"));
  ASSERT_TRUE(r.ok()) << r.error;
  const KeySet& set = *r.keys;
  ASSERT_EQ(set.size(), 6u);
  const std::pair<const char*, KeyType> kids[] = {
      {"rsa-1", KeyType::rsa},      {"rsa-2", KeyType::rsa},    {"ec-256", KeyType::ec_p256},
      {"ec-384", KeyType::ec_p384}, {"ed-1", KeyType::ed25519}, {"hs-1", KeyType::hmac}};
  for (auto [kid, type] : kids) {
    const Key* k = set.find(kid);
    ASSERT_NE(k, nullptr) << kid;
    EXPECT_EQ(k->type, type) << kid;
    EXPECT_EQ(k->origin.find(data_path("jwks.json") + " keys["), 0u) << k->origin;
  }
  EXPECT_EQ(set.find("rsa-2")->alg, Alg::RS256);
  EXPECT_EQ(set.find("ec-384")->alg, Alg::ES384);
  EXPECT_FALSE(set.find("rsa-1")->alg.has_value());
  EXPECT_EQ(set.find("hs-1")->secret, vectors::kSecret);
  EXPECT_TRUE(set.find("rsa-2")->usable_for(Alg::RS256));
  EXPECT_FALSE(set.find("rsa-2")->usable_for(Alg::PS256));
  EXPECT_TRUE(set.find("rsa-1")->usable_for(Alg::PS256));
  // The use=enc key and the P-521 key are left out, and say why.
  EXPECT_EQ(set.find("rsa-enc"), nullptr);
  EXPECT_EQ(set.find("ec-521"), nullptr);
  ASSERT_EQ(set.skipped().size(), 2u);
  EXPECT_NE(set.skipped()[0].find("keys[2] (kid 'rsa-enc'): use 'enc'"), std::string::npos)
      << set.skipped()[0];
  EXPECT_NE(set.skipped()[1].find("keys[5] (kid 'ec-521'): curve 'P-521' is not supported"),
            std::string::npos)
      << set.skipped()[1];
}

TEST(Jwks, EachKeyAlone) {
  const std::pair<const char*, KeyType> keys[] = {
      {vectors::kJwkRsa1, KeyType::rsa},      {vectors::kJwkRsa2, KeyType::rsa},
      {vectors::kJwkEc256, KeyType::ec_p256}, {vectors::kJwkEc384, KeyType::ec_p384},
      {vectors::kJwkEd1, KeyType::ed25519},   {vectors::kJwkHs1, KeyType::hmac}};
  for (auto [jwk, type] : keys) {
    KeySetResult r = parse_jwks(jwks({jwk}), "one.json");
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.keys->keys()[0].type, type);
    // Without a kid, too (several kid-less keys may share a set).
    r = parse_jwks(jwks({without(jwk, "kid"), without(jwk, "kid")}), "two.json");
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.keys->size(), 2u);
    EXPECT_TRUE(r.keys->keys()[0].kid.empty());
  }
}

TEST(Jwks, KeysWeDoNotVerifyWithAreLeftOut) {
  const std::pair<std::string, std::string> cases[] = {
      {vectors::kJwkX25519, "curve 'X25519' is not supported"},
      {vectors::kJwkEd448, "curve 'Ed448' is not supported"},
      {vectors::kJwkEc521, "curve 'P-521' is not supported"},
      {vectors::kJwkRsaEnc, "use 'enc' is not for signatures"},
      {with(without(vectors::kJwkRsa1, "kid"), "alg", "\"RS1\""), "alg 'RS1' is not supported"},
      {with(without(vectors::kJwkRsa1, "kid"), "alg", "\"PS512\""), "alg 'PS512' is not supported"},
      {with(without(vectors::kJwkRsa1, "key_ops"), "key_ops", "[\"encrypt\"]"),
       "'key_ops' does not include verify"},
      {R"({"kty":"PQC","kid":"future"})", "kty 'PQC' is not supported"},
  };
  for (const auto& [jwk, why] : cases) {
    // Alone: the file has no usable key, and the error says why.
    expect_error(parse_jwks(jwks({jwk}), "set.json"), {"set.json: no usable key", why});
    // Beside a usable key: left out, listed.
    KeySetResult r = parse_jwks(jwks({jwk, vectors::kJwkEc256}), "set.json");
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.keys->size(), 1u);
    ASSERT_EQ(r.keys->skipped().size(), 1u);
    EXPECT_NE(r.keys->skipped()[0].find("set.json keys[0]"), std::string::npos)
        << r.keys->skipped()[0];
    EXPECT_NE(r.keys->skipped()[0].find(why), std::string::npos) << r.keys->skipped()[0];
  }
}

TEST(Jwks, BrokenKeysAreErrorsNamingFileKeyAndProblem) {
  const std::string ec = vectors::kJwkEc256;
  const std::string rsa = vectors::kJwkRsa1;
  const std::pair<std::string, std::vector<std::string>> cases[] = {
      {vectors::kJwkEcOffCurve, {"keys[1] (kid 'ec-off-curve')", "EC"}},
      {vectors::kJwkEcShortX, {"keys[1] (kid 'ec-short-x')", "'x' and 'y' must be 32 bytes"}},
      {vectors::kJwkRsa1024, {"keys[1] (kid 'rsa-1024')", "1024 bits"}},
      {without(rsa, "n"), {"keys[1] (kid 'rsa-1')", "no 'n'"}},
      {without(rsa, "e"), {"no 'e'"}},
      {with(without(rsa, "n"), "n", "\"AQAB=\""), {"'n' is not base64url"}},
      {with(without(rsa, "n"), "n", "5"), {"'n' must be a string"}},
      {with(without(ec, "crv"), "crv", "\"P-384\""), {"P-384 'x' and 'y' must be 48 bytes"}},
      {without(ec, "crv"), {"EC key has no 'crv'"}},
      {without(ec, "y"), {"no 'y'"}},
      {with(without(ec, "kid"), "alg", "\"RS256\""),
       {"alg RS256 does not fit the key type (EC P-256)"}},
      {with(without(vectors::kJwkHs1, "kid"), "alg", "\"ES256\""),
       {"alg ES256 does not fit the key type (HMAC secret)"}},
      {R"({"kty":"oct","kid":"h"})", {"keys[1] (kid 'h')", "no 'k'"}},
      {R"({"kty":"oct","k":""})", {"keys[1]: no 'k'"}},
      {R"({"kty":"OKP","crv":"Ed25519","x":"AAAA"})", {"Ed25519 'x' must be 32 bytes"}},
      {R"({"kty":"OKP","x":"AAAA"})", {"OKP key has no 'crv'"}},
      {R"({"k":"AAAA"})", {"keys[1]: no 'kty'"}},
      {R"({"kty":5,"k":"AAAA"})", {"'kty' must be a string"}},
      {R"({"kty":"oct","k":"AAAA","kid":7})", {"'kid' must be a string"}},
      {R"({"kty":"oct","k":"AAAA","kid":""})", {"'kid' is empty"}},
      {R"({"kty":"oct","k":"AAAA","alg":""})", {"'alg' is empty"}},
      {R"({"kty":"oct","k":"AAAA","use":"both"})", {"unknown 'use' 'both'"}},
      {R"({"kty":"oct","k":"AAAA","key_ops":"verify"})", {"'key_ops' must be an array of strings"}},
      {R"({"kty":"oct","k":"AAAA","kty":"RSA"})", {"keys[1]: a member appears twice"}},
      {R"("oct")", {"keys[1]: not an object"}},
      {with(rsa, "kid", "\"rsa-2\""), {"a member appears twice"}},
  };
  for (const auto& [bad, parts] : cases) {
    // The broken key second: the index is its own, the good one does not save the file.
    KeySetResult r = parse_jwks(jwks({vectors::kJwkEd1, bad}), "/etc/wstrace/jwks.json");
    std::vector<std::string> all = {"/etc/wstrace/jwks.json"};
    all.insert(all.end(), parts.begin(), parts.end());
    ASSERT_FALSE(r.ok()) << bad;
    for (const std::string& part : all) {
      EXPECT_NE(r.error.find(part), std::string::npos) << "'" << part << "' not in: " << r.error;
    }
  }
}

TEST(Jwks, FileLevelErrors) {
  expect_error(parse_jwks("", "a.json"), {"a.json: not JSON"});
  expect_error(parse_jwks("{\"keys\":[", "a.json"), {"a.json: not JSON"});
  expect_error(parse_jwks("[]", "a.json"), {"a.json: not a JWK Set"});
  expect_error(parse_jwks(vectors::kJwkEc256, "a.json"), {"a.json: not a JWK Set"});
  expect_error(parse_jwks(R"({"keys":{}})", "a.json"), {"not a JWK Set"});
  expect_error(parse_jwks(R"({"keys":[]})", "a.json"), {"a.json: no usable key"});
  expect_error(
      parse_jwks(R"({"keys":[],"keys":[)" + std::string(vectors::kJwkEc256) + "]}", "a.json"),
      {"a.json: a member of the JWK Set appears twice"});
  expect_error(
      parse_jwks(jwks({vectors::kJwkEc256, vectors::kJwkEc384, vectors::kJwkEc256}), "a.json"),
      {"a.json keys[2] (kid 'ec-256'): kid 'ec-256' is also the kid of a.json keys[0]"});
  expect_error(load_jwks_file(data_path("none.json")), {"cannot open", "none.json"});
  // Other members of the set, and of keys (x5c, d, ...) are ignored.
  KeySetResult r = parse_jwks(
      R"({"issuer":"x","keys":[)" + with(vectors::kJwkEc256, "x5c", "[\"AAAA\"]") + "]}", "a.json");
  EXPECT_TRUE(r.ok()) << r.error;
}

TEST(Secret, EmptyIsRefused) {
  expect_error(key_set_from_secret(""), {"shared secret is empty"});
  KeySetResult r = key_set_from_secret("s", "hs");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.keys->find("hs")->secret, "s");
  EXPECT_EQ(r.keys->find("hs")->type, KeyType::hmac);
}

TEST(Build, SourcesIntoOneSet) {
  const std::vector<KeySource> sources = {
      {KeySource::Kind::secret, "another secret", "hs-local"},
      {KeySource::Kind::jwks_file, data_path("jwks.json"), ""},
      {KeySource::Kind::pem_file, data_path("p384.pem"), "p384-file"},
  };
  KeySetResult r = build_key_set(sources);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.keys->size(), 8u);
  EXPECT_EQ(r.keys->skipped().size(), 2u);
  EXPECT_EQ(r.keys->find("hs-local")->secret, "another secret");
  EXPECT_EQ(r.keys->find("p384-file")->type, KeyType::ec_p384);
  EXPECT_NE(r.keys->find("rsa-1"), nullptr);
  // Building again gives the same set: nothing is kept between builds.
  KeySetResult again = build_key_set(sources);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.keys->size(), r.keys->size());
}

TEST(Build, TheFirstFailureIsTheResult) {
  expect_error(build_key_set({}), {"no key configured"});
  const std::vector<KeySource> dup = {
      {KeySource::Kind::jwks_file, data_path("jwks.json"), ""},
      {KeySource::Kind::pem_file, data_path("p256.pem"), "ec-256"},
  };
  expect_error(build_key_set(dup),
               {"p256.pem (kid 'ec-256'): kid 'ec-256' is also the kid of", "jwks.json keys[3]"});
  const std::vector<KeySource> bad = {
      {KeySource::Kind::secret, "fine", ""},
      {KeySource::Kind::pem_file, data_path("rsa1024.pem"), ""},
      {KeySource::Kind::jwks_file, data_path("missing.json"), ""},
  };
  expect_error(build_key_set(bad), {"rsa1024.pem", "1024 bits"});
  expect_error(build_key_set(std::vector<KeySource>{{KeySource::Kind::secret, "", ""}}),
               {"secret is empty"});
  expect_error(build_key_set(std::vector<KeySource>{
                   {KeySource::Kind::jwks_file, data_path("jwks.json"), "x"}}),
               {"jwks.json: a JWK Set's keys carry their own kid"});
}

TEST(Build, MergeChangesNothingOnConflict) {
  KeySet a = *key_set_from_secret("one", "k").keys;
  KeySet b = *load_pem_file(data_path("ed25519.pem"), "ed").keys;
  KeySet c = *key_set_from_secret("two", "k").keys;
  EXPECT_EQ(a.merge(b), "");
  EXPECT_EQ(a.size(), 2u);
  EXPECT_NE(a.merge(c), "");
  EXPECT_EQ(a.size(), 2u);
  EXPECT_EQ(a.find("k")->secret, "one");
}

TEST(Build, CopiesShareKeysAndOutliveTheOriginal) {
  std::optional<KeySet> original = load_jwks_file(data_path("jwks.json")).keys;
  ASSERT_TRUE(original.has_value());
  KeySet copy = *original;
  original.reset();
  // A vector token verified with the copy alone.
  for (const vectors::Vector& v : vectors::kVectors) {
    if (std::string(v.name) != "EdDSA by kid") continue;
    VerifyOptions o{vectors::kAudience, vectors::kIssuer, 0};
    EXPECT_TRUE(verify(v.token, copy, o, vectors::kNow).ok());
  }
}

}  // namespace
}  // namespace wstrace::auth
