#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <simdjson.h>

#include <cmath>

namespace wstrace::server {
namespace {

constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

bool b64url_decode(std::string_view in, std::string& out) {
  out.clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '-') {
      v = 62;
    } else if (c == '_') {
      v = 63;
    } else {
      return false;  // padding is not used in JWTs
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // A lone 6-bit group cannot encode a byte, and the bits left over must be
  // zero (RFC 4648 §3.5): otherwise one token would have several spellings.
  return bits < 6 && (acc & ((1u << bits) - 1)) == 0;
}

std::string b64url_encode(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kB64Url[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kB64Url[(acc << (6 - bits)) & 63]);
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

}  // namespace

AuthResult verify_jwt(std::string_view token, std::string_view secret, int64_t now_unix_s) {
  AuthResult r;
  if (secret.empty()) {
    // An empty HMAC key is one anybody can sign with.
    r.error = "no secret configured";
    return r;
  }
  size_t dot1 = token.find('.');
  size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    r.error = "malformed token";
    return r;
  }
  std::string header, payload, sig;
  if (!b64url_decode(token.substr(0, dot1), header) ||
      !b64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1), payload) ||
      !b64url_decode(token.substr(dot2 + 1), sig)) {
    r.error = "malformed token";
    return r;
  }
  simdjson::dom::parser parser;
  simdjson::dom::element h;
  std::string_view alg;
  if (parser.parse(header).get(h) != simdjson::SUCCESS || h["alg"].get(alg) != simdjson::SUCCESS ||
      alg != "HS256") {
    r.error = "unsupported token algorithm (HS256 only)";
    return r;
  }
  std::string expected = hmac_sha256(secret, token.substr(0, dot2));
  if (sig.size() != expected.size() ||
      CRYPTO_memcmp(sig.data(), expected.data(), expected.size()) != 0) {
    r.error = "bad token signature";
    return r;
  }
  simdjson::dom::element claims;
  if (parser.parse(payload).get(claims) != simdjson::SUCCESS || !claims.is_object()) {
    r.error = "token claims are not a JSON object";
    return r;
  }
  // exp and nbf are NumericDates (RFC 7519 §4.1.4, §4.1.5): a claim of
  // another type is refused rather than ignored.
  simdjson::dom::element claim;
  double t;
  if (claims["exp"].get(claim) == simdjson::SUCCESS) {
    if (claim.get(t) != simdjson::SUCCESS) {
      r.error = "token claim 'exp' is not a number";
      return r;
    }
    if (std::floor(t) <= static_cast<double>(now_unix_s)) {
      r.error = "token expired";
      return r;
    }
  }
  if (claims["nbf"].get(claim) == simdjson::SUCCESS) {
    if (claim.get(t) != simdjson::SUCCESS) {
      r.error = "token claim 'nbf' is not a number";
      return r;
    }
    if (t > static_cast<double>(now_unix_s)) {
      r.error = "token not valid yet";
      return r;
    }
  }
  simdjson::dom::element sub;
  if (claims["sub"].get(sub) == simdjson::SUCCESS) {
    std::string_view s;
    if (sub.get(s) == simdjson::SUCCESS) {
      r.user_id = std::string(s);
    } else if (sub.is_int64()) {
      r.user_id = std::to_string(int64_t(sub));
    } else if (sub.is_uint64()) {
      r.user_id = std::to_string(uint64_t(sub));
    }
  }
  if (r.user_id.size() > 256) r.user_id.resize(256);
  r.ok = true;
  return r;
}

std::string sign_jwt(std::string_view payload_json, std::string_view secret) {
  std::string signing = b64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." +
                        b64url_encode(payload_json);
  return signing + "." + b64url_encode(hmac_sha256(secret, signing));
}

}  // namespace wstrace::server
