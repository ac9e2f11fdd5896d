// libFuzzer target: RFC 7692 negotiation of a Sec-WebSocket-Extensions value.
// An accepted offer gives parameters in range and a response that is itself
// an acceptable offer with the same server window.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "ws/deflate.h"

using namespace wstrace::ws;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  DeflatePolicy policy;
  policy.client_window_cap = data[0] % 20;
  std::string_view offer(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string response;
  auto p = negotiate_deflate(offer, policy, &response);
  if (!p) return 0;
  FUZZ_CHECK(p->server_window_bits >= 9 && p->server_window_bits <= 15);
  FUZZ_CHECK(p->client_window_bits >= 9 && p->client_window_bits <= 15);
  FUZZ_CHECK(response.rfind("permessage-deflate; server_no_context_takeover", 0) == 0);
  for (char c : response) FUZZ_CHECK(c >= 32 && c < 127);
  FUZZ_CHECK(p->client_no_context_takeover ==
             (response.find("client_no_context_takeover") != std::string::npos));
  std::string again;
  auto q = negotiate_deflate(response, policy, &again);
  FUZZ_CHECK(q.has_value());
  FUZZ_CHECK(q->server_window_bits == p->server_window_bits);
  FUZZ_CHECK(q->client_no_context_takeover == p->client_no_context_takeover);
  // Whatever we accept, our compressor for that window exists.
  Deflater d(p->server_window_bits);
  wstrace::Buffer out;
  FUZZ_CHECK(d.compress(reinterpret_cast<const uint8_t*>(offer.data()), offer.size(), out));
  return 0;
}
