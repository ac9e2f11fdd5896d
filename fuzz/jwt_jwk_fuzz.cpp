// libFuzzer target for src/auth: every input is tried as
//   - a JWK Set (parse_jwks), and the set it gives, when it gives one, asked
//     to verify a fixed token (key selection over arbitrary sets);
//   - a PEM file (parse_pem);
//   - a token, verified against a fixed KeySet (RSA, P-256, Ed25519 and an
//     HMAC secret, the keys of tests/unit/auth/data when this was written);
//   - the claims of a token we sign (sign_hs256 with the set's secret), so
//     arbitrary claims reach the claim checks behind a valid signature.
// Checks: no crash or sanitizer report; ok() exactly when the message is
// empty; accepted claims within their limits; a token we signed is never
// refused for its form, its algorithm, its key or its signature; OpenSSL's
// error queue is left empty.
#include <openssl/err.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/jwt.h"
#include "fuzz_check.h"

using namespace wstrace::auth;

namespace {

constexpr int64_t kNow = 1'750'000'000;

constexpr std::string_view kJwks =
    R"JWKS({"keys": [{"kty": "RSA", "key_ops": ["verify"], "n": "0afCghfcx3Yt91YI21_xJ6cO3CDPKeLELqRaFI1Y0700MJo-o7g_Ca1TNYCle99pw0Zum8WWpKhzCbm0NMK4H6-Oml3UBSMf-obmaM0k8xT1lmheSCSaeTuLBk1ADhpVpmje9etJxgAA__CmkaSORQuPfMn6bsqQPB6LqTNQl1BQeWbP-L7IGqoB_xw-Hmtc-UjQqeIzQt-BAn1M_YGdCDhwEcn-fjNOgDtFUWmbmyHsFKpCkRzq2XMPdHyMwhYuo0G_F1vJ419KPDAoLV0-lbUzgycFDWx3nqy37kmRdRtlaa7ZmyaWmPkFPkJWCfQjDycs3-_x6pPd1wW76Bo8lw", "e": "AQAB", "kid": "rsa-1"}, {"kty": "EC", "crv": "P-256", "x": "Kv_vd5b-hU1_PFFvPG9KFvfQJmvWqxS26yd-BM8jCcQ", "y": "iIbC035I2ziXVZYdfMvyrDZJ0XF113nRq8K4aznEz0A", "kid": "ec-256"}, {"kty": "OKP", "crv": "Ed25519", "x": "OH2EN1gGgRYJKCbPhi-_1nYlWCEbzXOmhjCpgEOxyPg", "kid": "ed-1"}, {"k": "TFQzTk1xMWdhb215Zy03TUZaZHZvdWk5dXFVeFFidXY4NktNb1QzbExhQzFaX0lEWTZ2SkxZMFlfWUx6WGl5RA", "kty": "oct", "kid": "hs-1"}]})JWKS";

const KeySet& fixed_keys() {
  static const KeySet keys = [] {
    KeySetResult r = parse_jwks(kJwks, "fuzz");
    FUZZ_CHECK(r.ok());
    FUZZ_CHECK(r.keys->size() == 4);
    return *r.keys;
  }();
  return keys;
}

void check_result(const VerifyResult& r) {
  FUZZ_CHECK(ERR_peek_error() == 0);
  FUZZ_CHECK(r.ok() == r.message.empty());
  if (!r.ok()) return;
  FUZZ_CHECK(r.claims.user.size() <= 256);
  FUZZ_CHECK(r.claims.has_channels || r.claims.channels.empty());
  FUZZ_CHECK(r.claims.has_publish || r.claims.publish.empty());
  for (const std::string& p : r.claims.channels) FUZZ_CHECK(is_channel_pattern(p));
  for (const std::string& p : r.claims.publish) FUZZ_CHECK(is_channel_pattern(p));
}

void check_set(const KeySetResult& r) {
  FUZZ_CHECK(ERR_peek_error() == 0);
  FUZZ_CHECK(r.ok() == r.error.empty());
  if (!r.ok()) return;
  FUZZ_CHECK(!r.keys->empty());
  for (const Key& k : r.keys->keys()) {
    FUZZ_CHECK((k.type == KeyType::hmac) == (k.pkey == nullptr));
    FUZZ_CHECK(k.type != KeyType::hmac || !k.secret.empty());
    FUZZ_CHECK(!k.alg || key_type_allows(k.type, *k.alg));
    FUZZ_CHECK(k.kid.empty() || r.keys->find(k.kid) == &k);  // kids are unique
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const KeySet& keys = fixed_keys();
  VerifyOptions options;
  options.audience = "wstrace";
  options.issuer = "https://issuer.example";
  options.leeway_s = 30;

  KeySetResult jwks = parse_jwks(in, "fuzz.json");
  check_set(jwks);
  if (jwks.ok()) check_result(verify(sign_hs256(R"({"sub":"x"})", "secret"), *jwks.keys, {}, kNow));
  check_set(parse_pem(in, "fuzz.pem"));

  check_result(verify(in, keys, options, kNow));

  const std::string token = sign_hs256(in, keys.find("hs-1")->secret, "hs-1");
  const VerifyResult own = verify(token, keys, options, kNow);
  check_result(own);
  FUZZ_CHECK(own.code != ErrorCode::bad_signature);
  FUZZ_CHECK(own.code != ErrorCode::unsupported_algorithm);
  FUZZ_CHECK(own.code != ErrorCode::algorithm_mismatch);
  FUZZ_CHECK(own.code != ErrorCode::unknown_kid);
  // Only the claims can make our own token malformed (or too long).
  FUZZ_CHECK(own.code != ErrorCode::malformed || own.message.find("claim") != std::string::npos ||
             token.size() > 64 * 1024);
  return 0;
}
