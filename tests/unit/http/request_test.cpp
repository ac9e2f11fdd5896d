// The HTTP/1.1 request-head parser: a real upgrade request, every malformed
// shape it must refuse (400), the size limits (431), incremental arrival, and
// the header and query helpers the handshake relies on.
#include "http/request.h"

#include <gtest/gtest.h>

#include <deque>
#include <string>

namespace wstrace::http {
namespace {

constexpr size_t kMax = 8192;

const std::string kUpgrade =
    "GET /ws?traceparent=00-abc&token=a%2Bb+c HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

// A Request holds views into the text it was parsed from: every text parsed
// here is kept alive until the end of the test program.
ParseStatus parse(const std::string& s, Request& req, size_t* head = nullptr,
                  size_t max = kMax) {
  static std::deque<std::string> keep;
  keep.push_back(s);
  size_t h = 0;
  ParseStatus st = parse_request(keep.back(), max, req, &h);
  if (head != nullptr) *head = h;
  return st;
}

ParseStatus status_of(const std::string& s, size_t max = kMax) {
  Request req;
  return parse(s, req, nullptr, max);
}

TEST(HttpRequest, ParsesARealUpgradeRequest) {
  Request req;
  size_t head = 0;
  ASSERT_EQ(parse(kUpgrade, req, &head), ParseStatus::Complete);
  EXPECT_EQ(head, kUpgrade.size());
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.target, "/ws?traceparent=00-abc&token=a%2Bb+c");
  EXPECT_EQ(req.path, "/ws");
  EXPECT_EQ(req.query, "traceparent=00-abc&token=a%2Bb+c");
  EXPECT_EQ(req.version_major, 1);
  EXPECT_EQ(req.version_minor, 1);
  ASSERT_EQ(req.header_count, 7u);
  EXPECT_EQ(req.headers[0].name, "Host");
  EXPECT_EQ(req.headers[0].value, "server.example.com");
  EXPECT_EQ(req.header("sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_EQ(req.header("SEC-WEBSOCKET-VERSION"), "13");
  EXPECT_FALSE(req.header("Sec-WebSocket-Extensions"));
  EXPECT_TRUE(req.header_has_token("connection", "upgrade"));
  EXPECT_TRUE(req.header_has_token("Connection", "KEEP-ALIVE"));
  EXPECT_FALSE(req.header_has_token("Connection", "close"));
  EXPECT_TRUE(req.header_has_token("Upgrade", "WebSocket"));
}

TEST(HttpRequest, NoQueryAndNoHeaders) {
  // The request holds views into the buffer: keep the buffers alive.
  const std::string plain = "GET /ws HTTP/1.0\r\n\r\n";
  const std::string empty_query = "GET /ws? HTTP/1.1\r\n\r\n";
  Request req;
  ASSERT_EQ(parse(plain, req), ParseStatus::Complete);
  EXPECT_EQ(req.path, "/ws");
  EXPECT_TRUE(req.query.empty());
  EXPECT_EQ(req.version_minor, 0);
  EXPECT_EQ(req.header_count, 0u);
  // An empty query after '?' is still a query.
  ASSERT_EQ(parse(empty_query, req), ParseStatus::Complete);
  EXPECT_EQ(req.path, "/ws");
  EXPECT_EQ(req.query, "");
}

TEST(HttpRequest, BytesAfterTheHeadAreNotPartOfIt) {
  // A client may send its first frame right behind the request.
  std::string s = kUpgrade + "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
  Request req;
  size_t head = 0;
  ASSERT_EQ(parse(s, req, &head), ParseStatus::Complete);
  EXPECT_EQ(head, kUpgrade.size());
}

TEST(HttpRequest, EveryPrefixNeedsMore) {
  for (size_t n = 0; n < kUpgrade.size(); ++n) {
    EXPECT_EQ(status_of(kUpgrade.substr(0, n)), ParseStatus::NeedMore) << "prefix " << n;
  }
}

TEST(HttpRequest, ValuesAreTrimmedAndMayBeEmpty) {
  Request req;
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nA:  \t x y \t\r\nB:\r\nC:z\r\n\r\n", req),
            ParseStatus::Complete);
  ASSERT_EQ(req.header_count, 3u);
  EXPECT_EQ(req.header("a"), "x y");
  EXPECT_EQ(req.header("b"), "");
  EXPECT_EQ(req.header("c"), "z");
}

TEST(HttpRequest, RepeatedHeaders) {
  Request req;
  std::string s =
      "GET / HTTP/1.1\r\nSec-WebSocket-Extensions: a; x=1\r\nHost: h\r\n"
      "sec-websocket-extensions: b\r\nConnection: keep-alive\r\nConnection: Upgrade\r\n\r\n";
  ASSERT_EQ(parse(s, req), ParseStatus::Complete);
  EXPECT_EQ(req.header("Sec-WebSocket-Extensions"), "a; x=1");  // the first one
  std::string joined = "stale";
  EXPECT_TRUE(req.header_joined("Sec-WebSocket-Extensions", joined));
  EXPECT_EQ(joined, "a; x=1, b");
  EXPECT_FALSE(req.header_joined("Absent", joined));
  EXPECT_EQ(joined, "");
  // The token may be on any of the lines.
  EXPECT_TRUE(req.header_has_token("Connection", "upgrade"));
}

TEST(HttpRequest, TokenListsTolerateSpacesAndEmptyItems) {
  Request req;
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nConnection: ,  ,keep-alive ,\tUpgrade\t,\r\n\r\n", req),
            ParseStatus::Complete);
  EXPECT_TRUE(req.header_has_token("Connection", "upgrade"));
  EXPECT_TRUE(req.header_has_token("Connection", "keep-alive"));
  // Substrings of a token are not the token.
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nConnection: upgraded, notupgrade\r\n\r\n", req),
            ParseStatus::Complete);
  EXPECT_FALSE(req.header_has_token("Connection", "upgrade"));
}

TEST(HttpRequest, MalformedRequestLines) {
  for (const char* s : {
           "\r\n\r\n",                          // empty request line
           "GET\r\n\r\n",                       // no target, no version
           "GET /\r\n\r\n",                     // no version
           " GET / HTTP/1.1\r\n\r\n",           // leading space: empty method
           "GET  / HTTP/1.1\r\n\r\n",           // two spaces: empty target
           "GET / HTTP/1.1 \r\n\r\n",           // trailing space in the version
           "GET /a b HTTP/1.1\r\n\r\n",         // space inside the target
           "GET / HTTP/1.10\r\n\r\n",           // version too long
           "GET / HTTP/1\r\n\r\n",              // version too short
           "GET / HTTPS/1.1\r\n\r\n",           // not HTTP
           "GET / http/1.1\r\n\r\n",            // the name is case-sensitive
           "GET / HTTP/1-1\r\n\r\n",            // no dot
           "GET / HTTP/x.1\r\n\r\n",            // not a digit
           "GET / HTTP/1.y\r\n\r\n",            // not a digit
           "G(T / HTTP/1.1\r\n\r\n",            // method must be a token
           "GE\x01T / HTTP/1.1\r\n\r\n",        // control character in the method
           "GET /\x7f HTTP/1.1\r\n\r\n",        // DEL in the target
           "GET /\t HTTP/1.1\r\n\r\n",          // tab in the target
           "GET / HTTP/1.1\nHost: x\r\n\r\n",   // bare LF ends no line
       }) {
    EXPECT_EQ(status_of(s), ParseStatus::BadRequest) << s;
  }
}

TEST(HttpRequest, MalformedHeaderLines) {
  const std::string line = "GET / HTTP/1.1\r\n";
  for (const char* h : {
           "NoColon\r\n",
           ": empty name\r\n",
           "Host : space before colon\r\n",
           " Host: leading space (obs-fold)\r\n",
           "Host: x\r\n folded: continuation\r\n",
           "\tHost: x\r\n",
           "Ho st: x\r\n",
           "Host: a\x01z\r\n",     // control character in the value
           "Host: a\x7fz\r\n",     // DEL in the value
           "Host: a\rb\r\n",       // bare CR in the value
           "Host: a\nb\r\n",       // bare LF in the value
           "H\xc3\xa9: x\r\n",     // non-token byte in the name
       }) {
    EXPECT_EQ(status_of(line + h + "\r\n"), ParseStatus::BadRequest) << h;
  }
}

TEST(HttpRequest, ObsTextAndTabsAreAllowedInValues) {
  Request req;
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nUser-Agent: caf\xc3\xa9\tbrowser\r\n\r\n", req),
            ParseStatus::Complete);
  EXPECT_EQ(req.header("user-agent"), "caf\xc3\xa9\tbrowser");
}

TEST(HttpRequest, HeadLimit) {
  // Exactly at the limit is fine; one byte more is 431.
  std::string s = "GET / HTTP/1.1\r\nX: ";
  const size_t max = 256;
  s += std::string(max - s.size() - 4, 'a');
  s += "\r\n\r\n";
  ASSERT_EQ(s.size(), max);
  EXPECT_EQ(status_of(s, max), ParseStatus::Complete);
  std::string longer = "GET / HTTP/1.1\r\nX: a" + s.substr(19);
  ASSERT_EQ(longer.size(), max + 1);
  EXPECT_EQ(status_of(longer, max), ParseStatus::HeadersTooLarge);
}

TEST(HttpRequest, HeadLimitIsDecidedBeforeTheBlankLineArrives) {
  std::string s = "GET / HTTP/1.1\r\nX: " + std::string(300, 'a');
  EXPECT_EQ(status_of(s.substr(0, 255), 256), ParseStatus::NeedMore);
  EXPECT_EQ(status_of(s.substr(0, 256), 256), ParseStatus::HeadersTooLarge);
  EXPECT_EQ(status_of(s, 256), ParseStatus::HeadersTooLarge);
}

TEST(HttpRequest, TooManyHeaders) {
  std::string ok = "GET / HTTP/1.1\r\n";
  for (size_t i = 0; i < Request::kMaxHeaders; ++i) ok += "H" + std::to_string(i) + ": v\r\n";
  Request req;
  ASSERT_EQ(parse(ok + "\r\n", req), ParseStatus::Complete);
  EXPECT_EQ(req.header_count, Request::kMaxHeaders);
  EXPECT_EQ(req.header("h63"), "v");
  EXPECT_EQ(status_of(ok + "One: more\r\n\r\n"), ParseStatus::HeadersTooLarge);
}

TEST(HttpRequest, ReusedRequestStartsClean) {
  Request req;
  ASSERT_EQ(parse(kUpgrade, req), ParseStatus::Complete);
  ASSERT_EQ(parse("GET /x HTTP/1.1\r\nA: b\r\n\r\n", req), ParseStatus::Complete);
  EXPECT_EQ(req.header_count, 1u);
  EXPECT_FALSE(req.header("Host"));
  EXPECT_TRUE(req.query.empty());
}

TEST(HttpIequals, AsciiCaseOnly) {
  EXPECT_TRUE(iequals("Upgrade", "uPGRADE"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("upgrade", "upgrades"));
  EXPECT_FALSE(iequals("a", "b"));
  EXPECT_FALSE(iequals("@", "`"));  // 0x40 and 0x60 differ by 32 but are not letters
  EXPECT_FALSE(iequals("[", "{"));
}

TEST(HttpQueryParam, FindsAndDecodes) {
  const std::string q = "traceparent=00-abc&token=a%2Bb+c%20d&empty=&flag&x=%41%62";
  EXPECT_EQ(query_param(q, "traceparent"), "00-abc");
  EXPECT_EQ(query_param(q, "token"), "a+b c d");
  EXPECT_EQ(query_param(q, "empty"), "");
  EXPECT_EQ(query_param(q, "flag"), "");
  EXPECT_EQ(query_param(q, "x"), "Ab");
  EXPECT_FALSE(query_param(q, "absent"));
  EXPECT_FALSE(query_param(q, "toke"));   // keys match whole
  EXPECT_FALSE(query_param("", "token"));
  EXPECT_EQ(query_param("tokenx=1&token=2", "token"), "2");
  EXPECT_EQ(query_param("a=1&a=2", "a"), "1");  // the first wins
  EXPECT_EQ(query_param("a=b=c", "a"), "b=c");
  EXPECT_EQ(query_param("&&a=1&", "a"), "1");
  EXPECT_EQ(query_param("a=%00", "a"), std::string(1, '\0'));
  EXPECT_EQ(query_param("a=%ff%FE", "a"), "\xff\xfe");
}

TEST(HttpQueryParam, MalformedPercentEscapes) {
  EXPECT_FALSE(query_param("a=%", "a"));
  EXPECT_FALSE(query_param("a=%4", "a"));
  EXPECT_FALSE(query_param("a=x%4", "a"));
  EXPECT_FALSE(query_param("a=%g1", "a"));
  EXPECT_FALSE(query_param("a=%1g", "a"));
  EXPECT_EQ(query_param("a=%41", "a"), "A");  // an escape at the very end
  // A malformed value of another key does not matter.
  EXPECT_EQ(query_param("b=%zz&a=1", "a"), "1");
}

}  // namespace
}  // namespace wstrace::http
