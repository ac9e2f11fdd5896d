#include "auth/jwt.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rsa.h>
#include <simdjson.h>

#include <cmath>
#include <limits>

#include "auth/base64url.h"
#include "auth/ossl.h"
#include "auth/text.h"
#include "util/json.h"

namespace wstrace::auth {
namespace {

using detail::has_duplicate_member;
using detail::printable;

constexpr size_t kMaxTokenBytes = 64 * 1024;
constexpr size_t kMaxSubBytes = 256;
constexpr size_t kMaxPatternBytes = 256;

VerifyResult failure(ErrorCode code, std::string message) {
  VerifyResult r;
  r.code = code;
  r.message = std::move(message);
  return r;
}

const char* digest_name(Alg alg) {
  switch (alg) {
    case Alg::HS384:
    case Alg::RS384:
    case Alg::ES384:
      return "SHA384";
    case Alg::HS512:
    case Alg::RS512:
      return "SHA512";
    case Alg::EdDSA:
      return nullptr;  // Ed25519 hashes internally
    default:
      return "SHA256";
  }
}

bool is_hmac(Alg alg) { return alg == Alg::HS256 || alg == Alg::HS384 || alg == Alg::HS512; }

// HMAC of `data`, into `out` (EVP_MAX_MD_SIZE bytes); its length, 0 on failure.
size_t hmac(Alg alg, std::string_view key, std::string_view data, unsigned char* out) {
  // Fetched once: a fetched algorithm is immutable and shared by all threads.
  static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) return 0;
  ossl::MacCtx ctx(EVP_MAC_CTX_new(mac));
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                          const_cast<char*>(digest_name(alg)), 0),
                         OSSL_PARAM_construct_end()};
  static const unsigned char kEmpty = 0;
  size_t len = 0;
  const auto* k = key.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(key.data());
  if (!ctx || EVP_MAC_init(ctx.get(), k, key.size(), params) != 1 ||
      EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(data.data()), data.size()) !=
          1 ||
      EVP_MAC_final(ctx.get(), out, &len, EVP_MAX_MD_SIZE) != 1) {
    ossl::take_error();
    return 0;
  }
  return len;
}

// JWS r||s (RFC 7518 §3.4) as the DER ECDSA-Sig-Value OpenSSL verifies.
bool ecdsa_der(std::string_view raw, std::string& der) {
  const size_t half = raw.size() / 2;
  const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
  ossl::EcdsaSig sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(p, static_cast<int>(half), nullptr);
  BIGNUM* s = BN_bin2bn(p + half, static_cast<int>(half), nullptr);
  if (!sig || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return false;
  }
  const int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return false;
  der.resize(static_cast<size_t>(len));
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  return i2d_ECDSA_SIG(sig.get(), &out) == len;
}

// Whether `sig` is `alg`'s signature of `input` with `key`; `why` says what
// was wrong with it otherwise.
bool signature_holds(const Key& key, Alg alg, std::string_view input, const std::string& sig,
                     std::string& why) {
  if (is_hmac(alg)) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    const size_t len = hmac(alg, key.secret, input, mac);
    if (len == 0) {
      why = "cannot compute the HMAC";
      return false;
    }
    if (sig.size() != len || CRYPTO_memcmp(sig.data(), mac, len) != 0) {
      why = "bad token signature";
      return false;
    }
    return true;
  }
  EVP_PKEY* pkey = key.pkey.get();
  std::string der;
  std::string_view to_check = sig;
  const std::string name(alg_name(alg));
  auto wrong_length = [&](size_t want) {
    why = name + " signature must be " + std::to_string(want) + " bytes, not " +
          std::to_string(sig.size());
    return false;
  };
  switch (key.type) {
    case KeyType::rsa: {
      // OpenSSL would take a shorter PSS signature as one with leading zeros:
      // exactly the modulus length keeps one spelling per signature.
      const size_t want = static_cast<size_t>(EVP_PKEY_get_size(pkey));
      if (sig.size() != want) return wrong_length(want);
      break;
    }
    case KeyType::ec_p256:
    case KeyType::ec_p384: {
      const size_t want = key.type == KeyType::ec_p256 ? 64 : 96;
      if (sig.size() != want) return wrong_length(want);
      if (!ecdsa_der(sig, der)) {
        ossl::take_error();
        why = "cannot read the " + name + " signature";
        return false;
      }
      to_check = der;
      break;
    }
    case KeyType::ed25519:
      if (sig.size() != 64) return wrong_length(64);
      break;
    case KeyType::hmac:
      why = "no key material";
      return false;
  }
  ossl::MdCtx md(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;  // owned by md
  bool ok = md && EVP_DigestVerifyInit_ex(md.get(), &pctx, digest_name(alg), nullptr, nullptr, pkey,
                                          nullptr) == 1;
  if (ok && key.type == KeyType::rsa) {
    if (alg == Alg::PS256) {
      ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, "SHA256", nullptr) == 1 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
    } else {
      ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
    }
  }
  ok = ok && EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(to_check.data()),
                              to_check.size(), reinterpret_cast<const unsigned char*>(input.data()),
                              input.size()) == 1;
  ossl::take_error();
  if (!ok) why = "bad token signature";
  return ok;
}

int64_t saturating_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
  return r;
}

// A NumericDate (RFC 7519 §2) in whole seconds, rounded down (up with
// `ceil`) and clamped to int64. False when `e` is not a number.
bool numeric_date(simdjson::dom::element e, bool ceil, int64_t& out) {
  int64_t i;
  uint64_t u;
  double d;
  if (e.get_int64().get(i) == simdjson::SUCCESS) {
    out = i;
  } else if (e.get_uint64().get(u) == simdjson::SUCCESS) {
    out = std::numeric_limits<int64_t>::max();
  } else if (e.get_double().get(d) == simdjson::SUCCESS) {
    d = ceil ? std::ceil(d) : std::floor(d);
    if (!(d < 9.2e18)) {
      out = std::numeric_limits<int64_t>::max();
    } else if (!(d > -9.2e18)) {
      out = std::numeric_limits<int64_t>::min();
    } else {
      out = static_cast<int64_t>(d);
    }
  } else {
    return false;
  }
  return true;
}

std::string claim_error(std::string_view name, std::string_view what) {
  return "token claim '" + std::string(name) + "' " + std::string(what);
}

// "channels" / "publish": an array of channel patterns.
bool read_patterns(simdjson::dom::element e, std::string_view name, std::vector<std::string>& out,
                   std::string& error) {
  simdjson::dom::array arr;
  if (e.get(arr) != simdjson::SUCCESS) {
    error = claim_error(name, "must be an array of strings");
    return false;
  }
  for (auto item : arr) {
    std::string_view s;
    if (item.get(s) != simdjson::SUCCESS) {
      error = claim_error(name, "must be an array of strings");
      return false;
    }
    if (!is_channel_pattern(s)) {
      error = claim_error(name, "has an invalid channel pattern '" + printable(s) +
                                    "' (1..256 bytes of A-Z a-z 0-9 _ . : / - * ? and {sub})");
      return false;
    }
    out.emplace_back(s);
  }
  return true;
}

}  // namespace

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::none:
      return "ok";
    case ErrorCode::malformed:
      return "malformed";
    case ErrorCode::bad_signature:
      return "bad_signature";
    case ErrorCode::unsupported_algorithm:
      return "unsupported_algorithm";
    case ErrorCode::algorithm_mismatch:
      return "algorithm_mismatch";
    case ErrorCode::unknown_kid:
      return "unknown_kid";
    case ErrorCode::expired:
      return "expired";
    case ErrorCode::not_yet_valid:
      return "not_yet_valid";
    case ErrorCode::wrong_audience:
      return "wrong_audience";
    case ErrorCode::wrong_issuer:
      return "wrong_issuer";
    case ErrorCode::bad_claim:
      return "bad_claim";
  }
  return "?";
}

bool is_channel_pattern(std::string_view p) {
  if (p.empty() || p.size() > kMaxPatternBytes) return false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) continue;
    switch (c) {
      case '_':
      case '.':
      case ':':
      case '/':
      case '-':
      case '*':
      case '?':
        continue;
      case '{':
        if (p.substr(i, 5) == "{sub}") {
          i += 4;
          continue;
        }
        return false;
      default:
        return false;
    }
  }
  return true;
}

VerifyResult verify(std::string_view token, const KeySet& keys, const VerifyOptions& options,
                    int64_t now_unix_s) {
  using simdjson::SUCCESS;
  using simdjson::dom::element;
  if (token.size() > kMaxTokenBytes) {
    return failure(ErrorCode::malformed,
                   "token longer than " + std::to_string(kMaxTokenBytes) + " bytes");
  }
  // 1. Three segments.
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return failure(ErrorCode::malformed, "malformed token (not three dot-separated segments)");
  }
  std::string header_json, payload, sig;
  if (!base64url_decode(token.substr(0, dot1), header_json)) {
    return failure(ErrorCode::malformed, "malformed token (header is not base64url)");
  }
  if (!base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1), payload)) {
    return failure(ErrorCode::malformed, "malformed token (claims are not base64url)");
  }
  if (!base64url_decode(token.substr(dot2 + 1), sig)) {
    return failure(ErrorCode::malformed, "malformed token (signature is not base64url)");
  }

  // 2. Header. One parser per thread: verification runs on every worker.
  thread_local simdjson::dom::parser parser;
  element doc;
  simdjson::dom::object header;
  if (parser.parse(header_json.data(), header_json.size(), true).get(doc) != SUCCESS ||
      doc.get(header) != SUCCESS) {
    return failure(ErrorCode::malformed, "malformed token (header is not a JSON object)");
  }
  if (has_duplicate_member(header)) {
    return failure(ErrorCode::malformed, "malformed token (a header parameter appears twice)");
  }
  std::string_view alg_text;
  element e;
  if (header["alg"].get(e) != SUCCESS || e.get(alg_text) != SUCCESS) {
    return failure(ErrorCode::malformed, "malformed token (header has no 'alg' string)");
  }
  const std::optional<Alg> alg = parse_alg(alg_text);
  if (!alg) {
    return failure(ErrorCode::unsupported_algorithm,
                   "unsupported token algorithm '" + printable(alg_text) + "'");
  }
  if (header["crit"].error() == SUCCESS) {
    return failure(ErrorCode::malformed,
                   "malformed token (header 'crit' names extensions we do not implement)");
  }
  std::string kid;
  if (header["kid"].get(e) == SUCCESS) {
    std::string_view k;
    if (e.get(k) != SUCCESS || k.empty()) {
      return failure(ErrorCode::malformed,
                     "malformed token (header 'kid' must be a non-empty string)");
    }
    kid = std::string(k);
  }

  // 3. The key.
  // A kid picks the key of that kid. A key configured without one (a
  // shared secret, a PEM) names no kid, so a kid no key has falls to the one
  // kid-less key that can verify the algorithm: issuers stamp kids that a
  // single-key server never heard of.
  const Key* key = nullptr;
  if (!kid.empty()) {
    key = keys.find(kid);
    if (key == nullptr) {
      size_t kidless = 0;
      for (const Key& k : keys.keys()) {
        if (k.kid.empty() && k.usable_for(*alg)) {
          key = &k;
          ++kidless;
        }
      }
      if (kidless != 1)
        return failure(ErrorCode::unknown_kid, "unknown key id '" + printable(kid) + "'");
    } else if (!key->usable_for(*alg)) {
      return failure(ErrorCode::algorithm_mismatch,
                     "key '" + printable(kid) + "' (" + std::string(key_type_name(key->type)) +
                         (key->alg ? ", " + std::string(alg_name(*key->alg)) + " only" : "") +
                         ") cannot verify " + std::string(alg_name(*alg)));
    }
  } else {
    size_t usable = 0;
    for (const Key& k : keys.keys()) {
      if (k.usable_for(*alg)) {
        key = &k;
        ++usable;
      }
    }
    if (usable == 0) {
      return failure(ErrorCode::algorithm_mismatch,
                     "no configured key can verify " + std::string(alg_name(*alg)));
    }
    if (usable > 1) {
      return failure(ErrorCode::unknown_kid, "token has no key id and " + std::to_string(usable) +
                                                 " keys can verify " + std::string(alg_name(*alg)));
    }
  }

  // 4. The signature over "header.payload" as sent.
  std::string why;
  if (!signature_holds(*key, *alg, token.substr(0, dot2), sig, why)) {
    return failure(ErrorCode::bad_signature, why);
  }

  // 5. Claims.
  simdjson::dom::object claims;
  if (parser.parse(payload.data(), payload.size(), true).get(doc) != SUCCESS ||
      doc.get(claims) != SUCCESS) {
    return failure(ErrorCode::malformed, "token claims are not a JSON object");
  }
  if (has_duplicate_member(claims))
    return failure(ErrorCode::malformed, "a token claim appears twice");

  VerifyResult r;
  std::string error;
  int64_t exp = 0, nbf = 0, iat = 0;
  const bool has_exp = claims["exp"].get(e) == SUCCESS;
  if (has_exp && !numeric_date(e, false, exp)) {
    return failure(ErrorCode::bad_claim, claim_error("exp", "must be a number"));
  }
  const bool has_nbf = claims["nbf"].get(e) == SUCCESS;
  if (has_nbf && !numeric_date(e, true, nbf)) {
    return failure(ErrorCode::bad_claim, claim_error("nbf", "must be a number"));
  }
  if (claims["iat"].get(e) == SUCCESS && !numeric_date(e, false, iat)) {
    return failure(ErrorCode::bad_claim, claim_error("iat", "must be a number"));
  }
  if (claims["sub"].get(e) == SUCCESS) {
    std::string_view s;
    int64_t i;
    uint64_t u;
    if (e.get(s) == SUCCESS) {
      if (s.size() > kMaxSubBytes) {
        return failure(ErrorCode::bad_claim, claim_error("sub", "is longer than 256 bytes"));
      }
      r.claims.user = std::string(s);
    } else if (e.get_int64().get(i) == SUCCESS) {
      r.claims.user = std::to_string(i);
    } else if (e.get_uint64().get(u) == SUCCESS) {
      r.claims.user = std::to_string(u);
    } else {
      return failure(ErrorCode::bad_claim, claim_error("sub", "must be a string or an integer"));
    }
  }
  if (claims["channels"].get(e) == SUCCESS) {
    if (!read_patterns(e, "channels", r.claims.channels, error))
      return failure(ErrorCode::bad_claim, error);
    r.claims.has_channels = true;
  }
  if (claims["publish"].get(e) == SUCCESS) {
    if (!read_patterns(e, "publish", r.claims.publish, error))
      return failure(ErrorCode::bad_claim, error);
    r.claims.has_publish = true;
  }
  // aud: a string or an array of strings; whether it names us.
  const bool has_aud = claims["aud"].get(e) == SUCCESS;
  bool aud_matches = false;
  if (has_aud) {
    std::string_view s;
    simdjson::dom::array arr;
    if (e.get(s) == SUCCESS) {
      aud_matches = !options.audience.empty() && s == options.audience;
    } else if (e.get(arr) == SUCCESS) {
      for (auto item : arr) {
        if (item.get(s) != SUCCESS) {
          return failure(ErrorCode::bad_claim,
                         claim_error("aud", "must be a string or an array of strings"));
        }
        aud_matches = aud_matches || (!options.audience.empty() && s == options.audience);
      }
    } else {
      return failure(ErrorCode::bad_claim,
                     claim_error("aud", "must be a string or an array of strings"));
    }
  }
  std::string_view iss;
  const bool has_iss = claims["iss"].get(e) == SUCCESS;
  if (has_iss && e.get(iss) != SUCCESS) {
    return failure(ErrorCode::bad_claim, claim_error("iss", "must be a string"));
  }

  const int64_t leeway = options.leeway_s > 0 ? options.leeway_s : 0;
  if (has_exp && now_unix_s >= saturating_add(exp, leeway)) {
    return failure(ErrorCode::expired, "token expired at " + std::to_string(exp) + " (now " +
                                           std::to_string(now_unix_s) + ", leeway " +
                                           std::to_string(leeway) + " s)");
  }
  if (has_nbf && saturating_add(now_unix_s, leeway) < nbf) {
    return failure(ErrorCode::not_yet_valid, "token not valid before " + std::to_string(nbf) +
                                                 " (now " + std::to_string(now_unix_s) +
                                                 ", leeway " + std::to_string(leeway) + " s)");
  }
  if (!options.audience.empty() && !aud_matches) {
    return failure(ErrorCode::wrong_audience,
                   has_aud
                       ? "token audience does not include '" + printable(options.audience) + "'"
                       : "token has no audience ('" + printable(options.audience) + "' expected)");
  }
  if (options.audience.empty() && has_aud) {
    return failure(ErrorCode::wrong_audience, "token has an audience but none is expected");
  }
  if (!options.issuer.empty() && (!has_iss || iss != options.issuer)) {
    return failure(
        ErrorCode::wrong_issuer,
        has_iss ? "token issuer '" + printable(iss) + "' is not '" + printable(options.issuer) + "'"
                : "token has no issuer ('" + printable(options.issuer) + "' expected)");
  }
  r.claims.exp = has_exp ? exp : 0;
  return r;
}

std::string sign_hs256(std::string_view claims_json, std::string_view secret,
                       std::string_view kid) {
  std::string header = R"({"alg":"HS256","typ":"JWT")";
  if (!kid.empty()) {
    header += R"(,"kid":)";
    json::append_string(header, kid);
  }
  header += '}';
  std::string signing = base64url_encode(header) + "." + base64url_encode(claims_json);
  unsigned char mac[EVP_MAX_MD_SIZE];
  const size_t len = hmac(Alg::HS256, secret, signing, mac);
  return signing + "." + base64url_encode(std::string_view(reinterpret_cast<char*>(mac), len));
}

}  // namespace wstrace::auth
