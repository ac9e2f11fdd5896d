// The server side of the RFC 6455 §4.2 opening handshake: the accept key,
// every rejection with its HTTP status, origin patterns and the extension
// negotiation it carries.
#include "ws/handshake.h"

#include <gtest/gtest.h>

#include <string>

#include "http/request.h"

namespace wstrace::ws {
namespace {

struct Req {
  std::string text;
  http::Request req;
};

// Parses a request head; `lines` are header lines without CRLF.
std::unique_ptr<Req> make(std::string request_line, std::vector<std::string> lines) {
  auto r = std::make_unique<Req>();
  r->text = request_line + "\r\n";
  for (const auto& l : lines) r->text += l + "\r\n";
  r->text += "\r\n";
  size_t head = 0;
  EXPECT_EQ(http::parse_request(r->text, 8192, r->req, &head), http::ParseStatus::Complete)
      << r->text;
  return r;
}

std::vector<std::string> good_headers() {
  return {"Host: server.example.com", "Upgrade: websocket", "Connection: Upgrade",
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Origin: http://example.com",
          "Sec-WebSocket-Version: 13"};
}

std::vector<std::string> without(std::vector<std::string> h, std::string_view prefix) {
  std::erase_if(h, [&](const std::string& l) { return l.rfind(prefix, 0) == 0; });
  return h;
}

std::vector<std::string> with(std::vector<std::string> h, std::string line) {
  h.push_back(std::move(line));
  return h;
}

std::vector<std::string> replaced(std::vector<std::string> h, std::string_view prefix,
                                  std::string line) {
  h = without(std::move(h), prefix);
  h.push_back(std::move(line));
  return h;
}

HandshakeResult evaluate(const std::string& line, const std::vector<std::string>& headers,
                         const HandshakePolicy& policy = {}) {
  auto r = make(line, headers);
  return evaluate_upgrade(r->req, policy);
}

int status_of(const HandshakeResult& r) {
  // The status in the response line must agree with the rejection.
  int st = std::stoi(r.response.substr(9, 3));
  EXPECT_EQ(st, rejection_status(r.rejection));
  return st;
}

TEST(Handshake, Rfc6455AcceptKey) {
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(Handshake, SwitchingProtocols) {
  HandshakeResult r = evaluate("GET /ws HTTP/1.1", good_headers());
  EXPECT_EQ(r.rejection, Rejection::None);
  EXPECT_EQ(r.endpoint, Endpoint::PubSub);
  EXPECT_FALSE(r.deflate);
  EXPECT_EQ(r.response,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
  EXPECT_EQ(status_of(r), 101);
}

TEST(Handshake, TolerantOfCaseListsAndQueries) {
  auto h = good_headers();
  h = replaced(h, "Upgrade", "upgrade: WebSocket");
  h = replaced(h, "Connection", "connection: keep-alive, Upgrade");
  h = replaced(h, "Host", "HOST: x");
  HandshakeResult r = evaluate("GET /ws?traceparent=00-x&token=t HTTP/1.1", h);
  EXPECT_EQ(r.rejection, Rejection::None) << r.reason;
  // Connection on two lines.
  h = replaced(good_headers(), "Connection", "Connection: keep-alive");
  h.push_back("Connection: Upgrade");
  EXPECT_EQ(evaluate("GET /ws HTTP/1.1", h).rejection, Rejection::None);
  // A later HTTP version is fine too.
  EXPECT_EQ(evaluate("GET /ws HTTP/2.0", good_headers()).rejection, Rejection::None);
}

TEST(Handshake, EchoEndpoint) {
  HandshakePolicy p;
  EXPECT_EQ(evaluate("GET /echo HTTP/1.1", good_headers(), p).rejection, Rejection::NotFound);
  p.echo_path = "/echo";
  HandshakeResult r = evaluate("GET /echo HTTP/1.1", good_headers(), p);
  EXPECT_EQ(r.rejection, Rejection::None);
  EXPECT_EQ(r.endpoint, Endpoint::Echo);
  EXPECT_EQ(evaluate("GET /ws HTTP/1.1", good_headers(), p).endpoint, Endpoint::PubSub);
}

TEST(Handshake, Rejections) {
  struct Case {
    const char* name;
    std::string line;
    std::vector<std::string> headers;
    Rejection want;
    int status;
  };
  const auto g = good_headers();
  std::vector<Case> cases = {
      {"other path", "GET /other HTTP/1.1", g, Rejection::NotFound, 404},
      {"path prefix", "GET /wss HTTP/1.1", g, Rejection::NotFound, 404},
      {"trailing slash", "GET /ws/ HTTP/1.1", g, Rejection::NotFound, 404},
      {"root", "GET / HTTP/1.1", g, Rejection::NotFound, 404},
      {"POST", "POST /ws HTTP/1.1", g, Rejection::BadRequest, 400},
      {"lowercase get", "get /ws HTTP/1.1", g, Rejection::BadRequest, 400},
      {"HTTP/1.0", "GET /ws HTTP/1.0", g, Rejection::BadRequest, 400},
      {"HTTP/0.9", "GET /ws HTTP/0.9", g, Rejection::BadRequest, 400},
      {"no Host", "GET /ws HTTP/1.1", without(g, "Host"), Rejection::BadRequest, 400},
      {"no Upgrade", "GET /ws HTTP/1.1", without(g, "Upgrade"), Rejection::BadRequest, 400},
      {"Upgrade: h2c", "GET /ws HTTP/1.1", replaced(g, "Upgrade", "Upgrade: h2c"),
       Rejection::BadRequest, 400},
      {"no Connection", "GET /ws HTTP/1.1", without(g, "Connection"), Rejection::BadRequest, 400},
      {"Connection: close", "GET /ws HTTP/1.1", replaced(g, "Connection", "Connection: close"),
       Rejection::BadRequest, 400},
      {"no version", "GET /ws HTTP/1.1", without(g, "Sec-WebSocket-Version"),
       Rejection::BadRequest, 400},
      {"version 8", "GET /ws HTTP/1.1",
       replaced(g, "Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"), Rejection::Version, 426},
      {"version 14", "GET /ws HTTP/1.1",
       replaced(g, "Sec-WebSocket-Version", "Sec-WebSocket-Version: 14"), Rejection::Version,
       426},
      {"version list", "GET /ws HTTP/1.1",
       replaced(g, "Sec-WebSocket-Version", "Sec-WebSocket-Version: 13, 8"), Rejection::Version,
       426},
      {"no key", "GET /ws HTTP/1.1", without(g, "Sec-WebSocket-Key"), Rejection::BadRequest, 400},
      {"empty key", "GET /ws HTTP/1.1", replaced(g, "Sec-WebSocket-Key", "Sec-WebSocket-Key:"),
       Rejection::BadRequest, 400},
      {"key too short", "GET /ws HTTP/1.1",
       replaced(g, "Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ="),
       Rejection::BadRequest, 400},
      {"key of 17 bytes", "GET /ws HTTP/1.1",
       replaced(g, "Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZSE="),
       Rejection::BadRequest, 400},
      {"key with a bad character", "GET /ws HTTP/1.1",
       replaced(g, "Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q=="),
       Rejection::BadRequest, 400},
      {"key without padding", "GET /ws HTTP/1.1",
       replaced(g, "Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQAA"),
       Rejection::BadRequest, 400},
      {"key with non-zero padding bits", "GET /ws HTTP/1.1",
       replaced(g, "Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR=="),
       Rejection::BadRequest, 400},
  };
  for (const auto& c : cases) {
    HandshakeResult r = evaluate(c.line, c.headers);
    EXPECT_EQ(r.rejection, c.want) << c.name;
    EXPECT_EQ(status_of(r), c.status) << c.name;
    EXPECT_FALSE(r.reason.empty()) << c.name;
    EXPECT_NE(r.response.find("Content-Length:"), std::string::npos) << c.name;
    EXPECT_NE(r.response.find("\r\n\r\n" + r.reason), std::string::npos) << c.name;
    EXPECT_EQ(r.response.find("Sec-WebSocket-Accept"), std::string::npos) << c.name;
    const bool has_version = r.response.find("\r\nSec-WebSocket-Version: 13\r\n") != std::string::npos;
    EXPECT_EQ(has_version, c.status == 426) << c.name;
  }
}

TEST(Handshake, OriginPolicy) {
  HandshakePolicy p;
  p.allowed_origins = {"https://app.example.com", "https://*.example.org"};
  auto with_origin = [&](const std::string& o) {
    return evaluate("GET /ws HTTP/1.1", replaced(good_headers(), "Origin", "Origin: " + o), p);
  };
  EXPECT_EQ(with_origin("https://app.example.com").rejection, Rejection::None);
  EXPECT_EQ(with_origin("HTTPS://APP.EXAMPLE.COM").rejection, Rejection::None);
  EXPECT_EQ(with_origin("https://chat.example.org").rejection, Rejection::None);
  EXPECT_EQ(with_origin("https://a.b.example.org").rejection, Rejection::None);
  for (const char* bad : {"http://app.example.com", "https://app.example.com.evil.com",
                          "https://evil.com", "https://example.org", "null",
                          "https://app.example.co"}) {
    HandshakeResult r = with_origin(bad);
    EXPECT_EQ(r.rejection, Rejection::Origin) << bad;
    EXPECT_EQ(status_of(r), 403) << bad;
  }
  // Clients that are not browsers send no Origin: allowed.
  EXPECT_EQ(evaluate("GET /ws HTTP/1.1", without(good_headers(), "Origin"), p).rejection,
            Rejection::None);
}

TEST(Handshake, OriginPatterns) {
  EXPECT_TRUE(origin_allowed("https://x", {}));
  EXPECT_TRUE(origin_allowed("anything", {"*"}));
  EXPECT_TRUE(origin_allowed("https://a.example.com", {"https://b.com", "*"}));
  EXPECT_TRUE(origin_allowed("https://a.example.com", {"https://*.example.com"}));
  EXPECT_FALSE(origin_allowed("https://example.com", {"https://*.example.com"}));
  EXPECT_FALSE(origin_allowed("http://a.example.com", {"https://*.example.com"}));
  EXPECT_FALSE(origin_allowed("https://a.example.com.evil", {"https://*.example.com"}));
  EXPECT_TRUE(origin_allowed("http://localhost:3000", {"http://localhost:*"}));
  EXPECT_FALSE(origin_allowed("http://localhost.evil.com", {"http://localhost:*"}));
  EXPECT_FALSE(origin_allowed("https://b.com", {"https://a.com"}));
}

TEST(Handshake, CompressionNegotiated) {
  HandshakePolicy p;
  p.compression = true;
  auto h = with(good_headers(),
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits");
  HandshakeResult r = evaluate("GET /ws HTTP/1.1", h, p);
  ASSERT_EQ(r.rejection, Rejection::None);
  ASSERT_TRUE(r.deflate);
  EXPECT_EQ(r.deflate->client_window_bits, 10);
  EXPECT_NE(r.response.find("\r\nSec-WebSocket-Extensions: permessage-deflate; "
                            "server_no_context_takeover; client_max_window_bits=10\r\n"),
            std::string::npos)
      << r.response;
  EXPECT_EQ(r.response.substr(r.response.size() - 4), "\r\n\r\n");
  // Offers on several header lines are one list.
  h = with(good_headers(), "Sec-WebSocket-Extensions: x-unknown; foo");
  h.push_back("Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover");
  r = evaluate("GET /ws HTTP/1.1", h, p);
  ASSERT_TRUE(r.deflate);
  EXPECT_TRUE(r.deflate->client_no_context_takeover);
}

TEST(Handshake, CompressionNotNegotiated) {
  auto h = with(good_headers(), "Sec-WebSocket-Extensions: permessage-deflate");
  HandshakePolicy off;
  HandshakeResult r = evaluate("GET /ws HTTP/1.1", h, off);
  EXPECT_FALSE(r.deflate);
  EXPECT_EQ(r.response.find("Sec-WebSocket-Extensions"), std::string::npos);
  HandshakePolicy on;
  on.compression = true;
  r = evaluate("GET /ws HTTP/1.1", good_headers(), on);  // no offer
  EXPECT_FALSE(r.deflate);
  EXPECT_EQ(r.response.find("Sec-WebSocket-Extensions"), std::string::npos);
  h = with(good_headers(), "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8");
  r = evaluate("GET /ws HTTP/1.1", h, on);  // declined: the upgrade still succeeds
  EXPECT_EQ(r.rejection, Rejection::None);
  EXPECT_FALSE(r.deflate);
  EXPECT_EQ(r.response.find("Sec-WebSocket-Extensions"), std::string::npos);
}

TEST(Handshake, RejectionResponses) {
  for (Rejection rj : {Rejection::BadRequest, Rejection::Version, Rejection::NotFound,
                       Rejection::Origin, Rejection::TooLarge, Rejection::Capacity,
                       Rejection::Timeout}) {
    std::string resp = rejection_response(rj, "why");
    int status = rejection_status(rj);
    EXPECT_EQ(resp.rfind("HTTP/1.1 " + std::to_string(status) + " ", 0), 0u) << resp;
    EXPECT_NE(resp.find("Connection: close\r\n"), std::string::npos);
    EXPECT_EQ(resp.substr(resp.size() - 8), "\r\n\r\nwhy\n");
    EXPECT_NE(rejection_name(rj), "unknown");
    EXPECT_NE(rejection_name(rj), "none");
  }
  EXPECT_EQ(rejection_status(Rejection::BadRequest), 400);
  EXPECT_EQ(rejection_status(Rejection::Version), 426);
  EXPECT_EQ(rejection_status(Rejection::NotFound), 404);
  EXPECT_EQ(rejection_status(Rejection::Origin), 403);
  EXPECT_EQ(rejection_status(Rejection::TooLarge), 431);
  EXPECT_EQ(rejection_status(Rejection::Capacity), 503);
  EXPECT_NE(rejection_response(Rejection::Version, "v").find("\r\nSec-WebSocket-Version: 13\r\n"),
            std::string::npos);
  EXPECT_NE(rejection_response(Rejection::Capacity, "c").find("\r\nRetry-After: "),
            std::string::npos);
}

}  // namespace
}  // namespace wstrace::ws
