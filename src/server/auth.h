// Client authentication with JSON Web Tokens signed with HMAC-SHA256
// (RFC 7519, RFC 7515). I/O-free: verifies a token against a secret.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace wstrace::server {

struct AuthResult {
  bool ok = false;
  std::string user_id;  // the "sub" claim, when present
  std::string error;    // why the token was refused
};

// Accepts only alg HS256; checks the signature (constant time), "exp" and
// "nbf" against `now_unix_s`.
AuthResult verify_jwt(std::string_view token, std::string_view secret, int64_t now_unix_s);

// Makes a token (tests, tooling).
std::string sign_jwt(std::string_view payload_json, std::string_view secret);

}  // namespace wstrace::server
