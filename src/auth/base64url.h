// Base64url without padding (RFC 4648 §5, as JWS and JWK use it, RFC 7515
// §2). Decoding is strict: only the 64 url-safe characters, no '=' padding,
// no whitespace, and the unused low bits of the last character must be zero,
// so every byte string has exactly one spelling.
#pragma once

#include <string>
#include <string_view>

namespace wstrace::auth {

// Decodes `in` into `out` (cleared first). False on any character outside the
// alphabet, a lone trailing character (6 bits cannot hold a byte) or non-zero
// unused bits.
bool base64url_decode(std::string_view in, std::string& out);

std::string base64url_encode(std::string_view in);

}  // namespace wstrace::auth
