// libFuzzer target: the HTTP request-head parser, its header and query
// helpers, and the WebSocket upgrade evaluation built on them (which runs
// the permessage-deflate negotiation too).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "http/request.h"
#include "ws/handshake.h"

using namespace wstrace;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string buf(reinterpret_cast<const char*>(data), size);
  constexpr size_t kMax = 4096;
  http::Request req;
  size_t head = 0;
  http::ParseStatus st = http::parse_request(buf, kMax, req, &head);
  if (st == http::ParseStatus::NeedMore) FUZZ_CHECK(size < kMax);
  if (st != http::ParseStatus::Complete) return 0;

  FUZZ_CHECK(head >= 4 && head <= size && head <= kMax);
  FUZZ_CHECK(std::string_view(buf).substr(head - 4, 4) == "\r\n\r\n");
  FUZZ_CHECK(req.header_count <= http::Request::kMaxHeaders);
  FUZZ_CHECK(!req.method.empty() && !req.target.empty());
  FUZZ_CHECK(req.path.size() <= req.target.size());
  for (size_t i = 0; i < req.header_count; ++i) {
    FUZZ_CHECK(!req.headers[i].name.empty());
    FUZZ_CHECK(req.headers[i].name.find(':') == std::string_view::npos);
    FUZZ_CHECK(req.headers[i].value.find('\r') == std::string_view::npos);
    FUZZ_CHECK(req.headers[i].value.find('\n') == std::string_view::npos);
    FUZZ_CHECK(req.header(req.headers[i].name).has_value());
  }
  // The head alone parses the same; bytes after it change nothing.
  http::Request again;
  size_t head2 = 0;
  FUZZ_CHECK(http::parse_request(std::string_view(buf).substr(0, head), kMax, again, &head2) ==
             http::ParseStatus::Complete);
  FUZZ_CHECK(head2 == head && again.header_count == req.header_count);
  http::Request shorter;
  FUZZ_CHECK(http::parse_request(std::string_view(buf).substr(0, head - 1), kMax, shorter, &head2) ==
             http::ParseStatus::NeedMore);

  std::string joined;
  (void)req.header_joined("Sec-WebSocket-Extensions", joined);
  (void)req.header_has_token("Connection", "upgrade");
  for (std::string_view key : {"traceparent", "token", ""}) {
    if (auto v = http::query_param(req.query, key)) FUZZ_CHECK(v->size() <= req.query.size());
  }

  ws::HandshakePolicy policy;
  policy.echo_path = "/echo";
  policy.compression = size % 2 == 0;
  if (size % 3 == 0) policy.allowed_origins = {"https://app.example.com", "https://*.example.org"};
  ws::HandshakeResult r = ws::evaluate_upgrade(req, policy);
  FUZZ_CHECK(r.response.size() >= 16);
  FUZZ_CHECK(r.response.rfind("HTTP/1.1 ", 0) == 0);
  if (r.rejection == ws::Rejection::None) {
    FUZZ_CHECK(r.response.rfind("HTTP/1.1 101 ", 0) == 0);
    FUZZ_CHECK(r.response.substr(r.response.size() - 4) == "\r\n\r\n");
    FUZZ_CHECK(r.endpoint != ws::Endpoint::None);
    if (r.deflate) {
      FUZZ_CHECK(policy.compression);
      FUZZ_CHECK(r.deflate->server_window_bits >= 9 && r.deflate->server_window_bits <= 15);
      FUZZ_CHECK(r.deflate->client_window_bits >= 9 && r.deflate->client_window_bits <= 15);
    }
  } else {
    FUZZ_CHECK(!r.reason.empty());
    FUZZ_CHECK(!r.deflate);
  }
  return 0;
}
