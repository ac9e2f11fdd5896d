// libFuzzer target: the server API's request bodies. Any body, for any
// method, is accepted or refused with a 4xx status, a code and a message;
// what is accepted keeps the limits (valid channels, content size).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "protocol/api.h"
#include "protocol/protocol.h"

using namespace wstrace::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > (1 << 16)) return 0;
  const auto method = static_cast<ApiMethod>(data[0] % kApiMethodCount);
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  ApiLimits limits;
  limits.max_content = 1024;
  limits.max_channels = 8;
  ApiRequest r;
  ApiError err;
  if (!parse_api_request(method, body, limits, r, err)) {
    FUZZ_CHECK(err.status >= 400 && err.status < 500);
    FUZZ_CHECK(!err.code.empty() && !err.message.empty());
    return 0;
  }
  FUZZ_CHECK(r.method == method);
  FUZZ_CHECK(r.content.size() <= limits.max_content);
  FUZZ_CHECK(r.channels.size() <= limits.max_channels);
  if (method == ApiMethod::Publish || method == ApiMethod::Subscribe ||
      method == ApiMethod::Unsubscribe || method == ApiMethod::History) {
    FUZZ_CHECK(valid_channel(r.channel));
  }
  for (const auto& c : r.channels) FUZZ_CHECK(valid_channel(c));
  if (method == ApiMethod::Disconnect) {
    FUZZ_CHECK(r.user.empty() != (r.connection_id == 0));
    FUZZ_CHECK(r.code == 1000 || (r.code >= 3000 && r.code <= 4999));
  }
  return 0;
}
