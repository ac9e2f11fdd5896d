// The server API's requests (docs/API.md): the JSON bodies backends POST to
// /api/v1/<method>. I/O-free: a body in, a request or an error (HTTP status,
// code, message) out. The request owns its strings.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wstrace::protocol {

enum class ApiMethod : uint8_t {
  Publish,
  Broadcast,
  Disconnect,
  Subscribe,
  Unsubscribe,
  History,
  Channels,
  Info,
  Presence,
};
constexpr int kApiMethodCount = 9;
std::string_view api_method_name(ApiMethod m);
// "publish" -> Publish; false for anything else.
bool api_method_from_path(std::string_view name, ApiMethod& out);

struct ApiRequest {
  ApiMethod method = ApiMethod::Info;
  std::string channel;                // publish, subscribe, unsubscribe, history, presence
  std::vector<std::string> channels;  // broadcast
  std::string content;                // publish, broadcast (unescaped)
  std::string user;                   // disconnect, subscribe, unsubscribe
  uint64_t connection_id = 0;         // disconnect (0: by user)
  uint16_t code = 1000;               // disconnect: the Close code
  std::string reason;                 // disconnect: the Close reason
  bool has_since = false;             // history
  std::string epoch;
  uint64_t since = 0;
  uint32_t limit = 0;                 // history: 0 = every message kept
};

struct ApiError {
  int status = 400;
  std::string_view code;  // "invalid_json", "missing_field", "invalid_channel", ...
  std::string message;
};

// Limits the parser applies.
struct ApiLimits {
  size_t max_content = 64 << 10;  // --max-content-size
  size_t max_channels = 1000;     // in one broadcast
};

// Parses the body of a request to `method` (an empty body is an empty
// object). False with `err` set when the body is not what the method takes.
bool parse_api_request(ApiMethod method, std::string_view body, const ApiLimits& limits,
                       ApiRequest& out, ApiError& err);

}  // namespace wstrace::protocol
