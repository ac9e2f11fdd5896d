// JSON Web Token verification (RFC 7519) of JWS compact tokens (RFC 7515)
// with the algorithms of RFC 7518 and RFC 8037. I/O-free apart from reading
// key files when a KeySet is built; all cryptography is OpenSSL's (EVP).
//
// BUILDING A KEYSET (auth/keys.h)
//   build_key_set(sources) turns the configured sources into one KeySet:
//   - KeySource::secret: a shared secret (any non-empty bytes) for HS256,
//     HS384 and HS512, with an optional kid.
//   - KeySource::pem_file: a PEM file holding exactly one block, a
//     "PUBLIC KEY" (SubjectPublicKeyInfo), an "RSA PUBLIC KEY" (PKCS#1) or a
//     "CERTIFICATE" whose subject key is taken (the certificate itself is not
//     validated: no dates, no chain). Private keys are refused. Optional kid.
//   - KeySource::jwks_file: a JWK Set (RFC 7517 §5, {"keys":[...]}). Each key
//     takes its "kid" (optional, non-empty, unique in the whole KeySet), its
//     "alg" (optional: the key then verifies only that algorithm) and its
//     "use"/"key_ops" (a key with use "enc", or key_ops without "verify", is
//     left out). kty RSA (n, e), EC (crv P-256 or P-384, x and y at the
//     curve's full length), OKP (crv Ed25519, x) and oct (k, an HS secret).
//     Keys that are well formed but of a kind we do not verify with (another
//     kty, curve or alg, use "enc") are left out and listed in
//     KeySet::skipped(); a key that is broken (a required member missing, not
//     base64url, a point off its curve, an alg that does not fit the kty) is
//     an error for the whole file, and so is a file with no usable key.
//   Every key is checked as it is loaded: RSA keys have 2048 to 8192 bits, EC
//   keys are on P-256 or P-384, and OpenSSL's public-key check passes.
//   Errors say which file, which key ("jwks.json keys[2] (kid 'a')") and what
//   is wrong. Building has no side effects and never touches an existing
//   KeySet, so a reload keeps the old set when the new one fails. A built
//   KeySet is immutable; share it between threads as a const object.
//
// VERIFYING A TOKEN: verify(token, keys, options, now)
//   1. Form: at most 64 KiB, exactly three base64url segments (strict: no
//      padding, no other characters, canonical trailing bits), a header that
//      is a JSON object without duplicate members. Otherwise `malformed`.
//   2. Header: "alg" must be one of HS256 HS384 HS512 RS256 RS384 RS512 PS256
//      ES256 ES384 EdDSA, exactly (`unsupported_algorithm`, also for "none");
//      a "crit" header is refused (`malformed`: we implement no extension);
//      "kid", when present, must be a non-empty string (`malformed`). Key
//      material in the header (jwk, jku, x5c, x5u) is never used.
//   3. Key: with a kid, the key with that kid (none: `unknown_kid`); without,
//      the one key of the set that can verify the alg (none:
//      `algorithm_mismatch`; several: `unknown_kid`). The key must be able to
//      verify the alg: HMAC secrets only HS*, RSA keys only RS* and PS256,
//      P-256 only ES256, P-384 only ES384, Ed25519 only EdDSA, and a JWK's
//      "alg" only itself (`algorithm_mismatch`). So a public key is never
//      used as an HMAC secret.
//   4. Signature over the first two segments as sent (`bad_signature`):
//      HMAC compared in constant time; RSA signatures must be exactly the
//      modulus length; PS256 is RSA-PSS with SHA-256, MGF1-SHA-256 and a
//      32-byte salt; ES256/ES384 signatures are r||s of exactly 64/96 bytes.
//   5. Claims (only read once the signature holds): a JSON object without
//      duplicate members (`malformed`), then
//      - exp/nbf/iat: numbers when present (`bad_claim`). Expired when
//        now >= floor(exp) + leeway (`expired`); not yet valid when
//        now + leeway < ceil(nbf) (`not_yet_valid`). iat is not compared.
//      - aud: a string or an array of strings (`bad_claim`). With
//        options.audience set it must be, or contain, that audience; without
//        it a token that has an aud is refused (RFC 7519 §4.1.3: a recipient
//        must identify itself with the aud): `wrong_audience` in both cases.
//      - iss: a string (`bad_claim`); with options.issuer set it must equal
//        it and be present (`wrong_issuer`).
//      - sub: a string or an integer, at most 256 bytes (`bad_claim`);
//        Claims::user, empty when absent. Returned as is: a caller that puts
//        it into a channel pattern ("{sub}") must treat it literally.
//      - channels/publish: arrays of channel patterns (`bad_claim`, e.g.
//        "token claim 'channels' must be an array of strings"), each 1..256
//        bytes of [A-Za-z0-9_.:/-], '*', '?' and the text "{sub}"
//        (is_channel_pattern).
//      Other claims are ignored.
//   The first failing step gives the result. verify never throws, never
//   aborts on any input, leaves OpenSSL's error queue empty, and may be
//   called from any number of threads at once with the same KeySet.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "auth/keys.h"

namespace wstrace::auth {

enum class ErrorCode : uint8_t {
  none,
  malformed,
  bad_signature,
  unsupported_algorithm,
  algorithm_mismatch,
  unknown_kid,
  expired,
  not_yet_valid,
  wrong_audience,
  wrong_issuer,
  bad_claim,
};

// The stable short code: "malformed", "bad_signature", ... ("ok" for none).
std::string_view error_code_name(ErrorCode code);

struct Claims {
  std::string user;                   // "sub" (an integer in decimal); empty: none
  int64_t exp = 0;                    // floor("exp") in Unix seconds; 0: none
  std::vector<std::string> channels;  // "channels": patterns the user may subscribe to
  std::vector<std::string> publish;   // "publish": patterns the user may publish to
  bool has_channels = false;          // whether the claim was present (it may be [])
  bool has_publish = false;
};

struct VerifyOptions {
  std::string audience;  // expected "aud"; empty: tokens must have none
  std::string issuer;    // expected "iss"; empty: not checked
  int64_t leeway_s = 0;  // clock skew allowed on exp and nbf (negative counts as 0)
};

struct VerifyResult {
  ErrorCode code = ErrorCode::none;
  std::string message;  // for people and logs, e.g. "token expired 45 s ago"; empty when ok
  Claims claims;        // valid only when ok()
  bool ok() const { return code == ErrorCode::none; }
};

// See the contract at the top of this file.
VerifyResult verify(std::string_view token, const KeySet& keys, const VerifyOptions& options,
                    int64_t now_unix_s);

// 1..256 bytes of [A-Za-z0-9_.:/-*?], '{' and '}' only as part of "{sub}".
bool is_channel_pattern(std::string_view pattern);

// An HS256 token over `claims_json` as given (not checked), header
// {"alg":"HS256","typ":"JWT"} plus "kid" when not empty. Tests and tooling.
std::string sign_hs256(std::string_view claims_json, std::string_view secret,
                       std::string_view kid = {});

}  // namespace wstrace::auth
