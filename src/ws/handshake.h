// The server side of the opening handshake (RFC 6455 §4.2): validates an
// upgrade request and produces the 101 response or the rejection to send.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/request.h"
#include "ws/deflate.h"

namespace wstrace::ws {

enum class Endpoint : uint8_t { None, PubSub, Echo };

struct HandshakePolicy {
  std::string pubsub_path = "/ws";
  std::string echo_path;                     // empty: no echo endpoint
  std::vector<std::string> allowed_origins;  // empty: any; "*" entries allowed
  bool compression = false;
  DeflatePolicy deflate;
};

// Why an upgrade was rejected (a metrics label and a log field).
enum class Rejection : uint8_t {
  None,
  BadRequest,     // 400
  Version,        // 426
  NotFound,       // 404
  Origin,         // 403
  TooLarge,       // 431
  Capacity,       // 503 (max connections; decided by the server)
  Timeout,        // handshake never finished
};

std::string_view rejection_name(Rejection r);
int rejection_status(Rejection r);

struct HandshakeResult {
  Rejection rejection = Rejection::None;
  std::string reason;     // human-readable, for the response body and logs
  Endpoint endpoint = Endpoint::None;
  std::optional<DeflateParams> deflate;
  std::string response;   // the full HTTP response to write
};

// Validates `req` against §4.2.1 and the policy.
HandshakeResult evaluate_upgrade(const http::Request& req, const HandshakePolicy& policy);

// The full HTTP response for a rejection.
std::string rejection_response(Rejection r, std::string_view reason);

// base64(SHA-1(key + GUID)) per §4.2.2.
std::string accept_key(std::string_view client_key);

// Whether an Origin value matches the policy's list ("*" matches any; an
// entry may be "https://*.example.com").
bool origin_allowed(std::string_view origin, const std::vector<std::string>& allowed);

}  // namespace wstrace::ws
