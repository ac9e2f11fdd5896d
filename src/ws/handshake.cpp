#include "ws/handshake.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "http/response.h"

namespace wstrace::ws {
namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool is_base64_nonce(std::string_view key) {
  // 16 random bytes, base64: 22 significant characters and "==".
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  for (size_t i = 0; i < 22; ++i) {
    char c = key[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/';
    if (!ok) return false;
  }
  // The last significant character carries 2 bits; the 4 padding bits must be zero.
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  return (kAlphabet.find(key[21]) & 0x0F) == 0;
}

HandshakeResult reject(Rejection r, std::string reason) {
  HandshakeResult out;
  out.rejection = r;
  out.response = rejection_response(r, reason);
  out.reason = std::move(reason);
  return out;
}

}  // namespace

std::string_view rejection_name(Rejection r) {
  switch (r) {
    case Rejection::None: return "none";
    case Rejection::BadRequest: return "bad_request";
    case Rejection::Version: return "version";
    case Rejection::NotFound: return "not_found";
    case Rejection::Origin: return "origin";
    case Rejection::TooLarge: return "headers_too_large";
    case Rejection::Capacity: return "capacity";
    case Rejection::Timeout: return "handshake_timeout";
  }
  return "unknown";
}

int rejection_status(Rejection r) {
  switch (r) {
    case Rejection::None: return 101;
    case Rejection::BadRequest: return 400;
    case Rejection::Version: return 426;
    case Rejection::NotFound: return 404;
    case Rejection::Origin: return 403;
    case Rejection::TooLarge: return 431;
    case Rejection::Capacity: return 503;
    case Rejection::Timeout: return 408;
  }
  return 400;
}

std::string rejection_response(Rejection r, std::string_view reason) {
  std::string body(reason);
  body += '\n';
  std::string_view extra;
  if (r == Rejection::Version) extra = "Sec-WebSocket-Version: 13\r\n";
  if (r == Rejection::Capacity) extra = "Retry-After: 1\r\n";
  return http::make_response(rejection_status(r), "text/plain; charset=utf-8", body, extra);
}

std::string accept_key(std::string_view client_key) {
  std::string input(client_key);
  input += kGuid;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  unsigned char out[32];
  int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}

bool origin_allowed(std::string_view origin, const std::vector<std::string>& allowed) {
  if (allowed.empty()) return true;
  for (const auto& pattern : allowed) {
    if (pattern == "*") return true;
    size_t star = pattern.find('*');
    if (star == std::string::npos) {
      if (http::iequals(origin, pattern)) return true;
      continue;
    }
    std::string_view prefix(pattern.data(), star);
    std::string_view suffix(pattern.data() + star + 1, pattern.size() - star - 1);
    if (origin.size() >= prefix.size() + suffix.size() &&
        http::iequals(origin.substr(0, prefix.size()), prefix) &&
        http::iequals(origin.substr(origin.size() - suffix.size()), suffix)) {
      return true;
    }
  }
  return false;
}

HandshakeResult evaluate_upgrade(const http::Request& req, const HandshakePolicy& policy) {
  Endpoint endpoint = Endpoint::None;
  if (req.path == policy.pubsub_path) {
    endpoint = Endpoint::PubSub;
  } else if (!policy.echo_path.empty() && req.path == policy.echo_path) {
    endpoint = Endpoint::Echo;
  } else {
    return reject(Rejection::NotFound, "no WebSocket endpoint at this path");
  }
  if (req.method != "GET") return reject(Rejection::BadRequest, "the upgrade must be a GET request");
  if (req.version_major < 1 || (req.version_major == 1 && req.version_minor < 1)) {
    return reject(Rejection::BadRequest, "the upgrade needs HTTP/1.1 or later");
  }
  if (!req.header("Host")) return reject(Rejection::BadRequest, "missing Host header");
  if (!req.header_has_token("Upgrade", "websocket")) {
    return reject(Rejection::BadRequest, "missing 'Upgrade: websocket' header");
  }
  if (!req.header_has_token("Connection", "upgrade")) {
    return reject(Rejection::BadRequest, "missing 'Connection: Upgrade' header");
  }
  auto version = req.header("Sec-WebSocket-Version");
  if (!version) return reject(Rejection::BadRequest, "missing Sec-WebSocket-Version header");
  if (*version != "13") return reject(Rejection::Version, "only WebSocket version 13 is supported");
  auto key = req.header("Sec-WebSocket-Key");
  if (!key || !is_base64_nonce(*key)) {
    return reject(Rejection::BadRequest, "missing or malformed Sec-WebSocket-Key header");
  }
  if (!policy.allowed_origins.empty()) {
    // Non-browser clients send no Origin; the check protects browsers' users.
    auto origin = req.header("Origin");
    if (origin && !origin_allowed(*origin, policy.allowed_origins)) {
      return reject(Rejection::Origin, "origin not allowed");
    }
  }

  HandshakeResult out;
  out.endpoint = endpoint;
  out.response.reserve(192);
  out.response +=
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: ";
  out.response += accept_key(*key);
  out.response += "\r\n";
  if (policy.compression) {
    std::string extensions;
    if (req.header_joined("Sec-WebSocket-Extensions", extensions)) {
      std::string ext_response;
      out.deflate = negotiate_deflate(extensions, policy.deflate, &ext_response);
      if (out.deflate) {
        out.response += "Sec-WebSocket-Extensions: ";
        out.response += ext_response;
        out.response += "\r\n";
      }
    }
  }
  out.response += "\r\n";
  return out;
}

}  // namespace wstrace::ws
