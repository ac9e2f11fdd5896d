#include "http/response.h"

#include <gtest/gtest.h>

namespace wstrace::http {
namespace {

TEST(HttpResponse, CompleteResponse) {
  std::string r = make_response(404, "text/plain", "nope\n");
  EXPECT_EQ(r,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
            "Connection: close\r\n\r\nnope\n");
}

TEST(HttpResponse, ExtraHeadersAndKeepAlive) {
  std::string r = make_response(426, "text/plain", "", "Sec-WebSocket-Version: 13\r\n", true);
  EXPECT_EQ(r,
            "HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n"
            "Connection: keep-alive\r\nSec-WebSocket-Version: 13\r\n\r\n");
}

TEST(HttpResponse, ReasonPhrases) {
  EXPECT_EQ(reason_phrase(101), "Switching Protocols");
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(400), "Bad Request");
  EXPECT_EQ(reason_phrase(403), "Forbidden");
  EXPECT_EQ(reason_phrase(404), "Not Found");
  EXPECT_EQ(reason_phrase(408), "Request Timeout");
  EXPECT_EQ(reason_phrase(426), "Upgrade Required");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(503), "Service Unavailable");
  EXPECT_EQ(reason_phrase(299), "Unknown");
}

TEST(HttpResponse, NotModifiedHasNoBodyAndNoLength) {
  const std::string r = make_response(304, "text/html", "ignored", "ETag: \"x\"\r\n", true);
  EXPECT_EQ(r, "HTTP/1.1 304 Not Modified\r\nConnection: keep-alive\r\nETag: \"x\"\r\n\r\n");
}

}  // namespace
}  // namespace wstrace::http
