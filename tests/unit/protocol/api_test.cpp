// The server API's request bodies: every method's required fields, the type
// of every field, the limits, and the answer (status, code, message) for
// each kind of bad body.
#include "protocol/api.h"

#include <gtest/gtest.h>

namespace wstrace::protocol {
namespace {

struct Parsed {
  bool ok;
  ApiRequest req;
  ApiError err;
};

Parsed parse(ApiMethod m, std::string_view body, ApiLimits limits = {}) {
  Parsed p;
  p.ok = parse_api_request(m, body, limits, p.req, p.err);
  return p;
}

TEST(ApiRequest, MethodsByPath) {
  ApiMethod m{};
  for (int i = 0; i < kApiMethodCount; ++i) {
    const auto want = static_cast<ApiMethod>(i);
    ASSERT_TRUE(api_method_from_path(api_method_name(want), m));
    EXPECT_EQ(m, want);
  }
  EXPECT_FALSE(api_method_from_path("Publish", m));
  EXPECT_FALSE(api_method_from_path("", m));
  EXPECT_FALSE(api_method_from_path("publish/", m));
}

TEST(ApiRequest, Publish) {
  auto p = parse(ApiMethod::Publish, R"({"channel":"news","content":"a \"b\" \u00e9","x":1})");
  ASSERT_TRUE(p.ok) << p.err.message;
  EXPECT_EQ(p.req.channel, "news");
  EXPECT_EQ(p.req.content, "a \"b\" \xc3\xa9");
  // Whitespace around the body is fine.
  EXPECT_TRUE(parse(ApiMethod::Publish, " \r\n{\"channel\":\"a\",\"content\":\"\"}\n").ok);
}

TEST(ApiRequest, RefusalsSayWhat) {
  struct Case {
    ApiMethod m;
    const char* body;
    int status;
    const char* code;
    const char* says;
  };
  const Case cases[] = {
      {ApiMethod::Publish, "", 400, "missing_field", "'channel'"},
      {ApiMethod::Publish, "{nope", 400, "invalid_json", "not valid JSON"},
      {ApiMethod::Publish, "[]", 400, "invalid_json", "JSON object"},
      {ApiMethod::Publish, R"({"channel":"a"})", 400, "missing_field", "'content'"},
      {ApiMethod::Publish, R"({"channel":7,"content":""})", 400, "invalid_json", "'channel'"},
      {ApiMethod::Publish, R"({"channel":"a b","content":""})", 400, "invalid_channel", "1-128"},
      {ApiMethod::Broadcast, R"({"channels":[],"content":""})", 400, "missing_field", "empty"},
      {ApiMethod::Broadcast, R"({"channels":"a","content":""})", 400, "invalid_json", "array"},
      {ApiMethod::Broadcast, R"({"channels":["a",1],"content":""})", 400, "invalid_json",
       "channels[]"},
      {ApiMethod::Broadcast, R"({"channels":["a","b c"],"content":""})", 400, "invalid_channel",
       "channels"},
      {ApiMethod::Disconnect, "{}", 400, "missing_field", "exactly one"},
      {ApiMethod::Disconnect, R"({"user":"u","connection_id":3})", 400, "missing_field",
       "exactly one"},
      {ApiMethod::Disconnect, R"({"connection_id":0})", 400, "invalid_json", "positive"},
      {ApiMethod::Disconnect, R"({"user":"u","code":1006})", 400, "invalid_json", "3000-4999"},
      {ApiMethod::Disconnect, R"({"user":"u","code":5000})", 400, "invalid_json", "3000-4999"},
      {ApiMethod::Subscribe, R"({"user":"u"})", 400, "missing_field", "'channel'"},
      {ApiMethod::Unsubscribe, R"({"user":"","channel":"c"})", 400, "missing_field", "empty"},
      {ApiMethod::History, R"({"channel":"c","since":{"epoch":"e"}})", 400, "invalid_json",
       "'offset'"},
      {ApiMethod::History, R"({"channel":"c","limit":-1})", 400, "invalid_json", "'limit'"},
  };
  for (const Case& c : cases) {
    auto p = parse(c.m, c.body);
    EXPECT_FALSE(p.ok) << c.body;
    EXPECT_EQ(p.err.status, c.status) << c.body;
    EXPECT_EQ(p.err.code, c.code) << c.body;
    EXPECT_NE(p.err.message.find(c.says), std::string::npos) << c.body << ": " << p.err.message;
  }
}

TEST(ApiRequest, Limits) {
  ApiLimits l;
  l.max_content = 4;
  l.max_channels = 2;
  auto p = parse(ApiMethod::Publish, R"({"channel":"a","content":"12345"})", l);
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.err.status, 413);
  EXPECT_EQ(p.err.code, "message_too_large");
  EXPECT_TRUE(parse(ApiMethod::Publish, R"({"channel":"a","content":"1234"})", l).ok);
  p = parse(ApiMethod::Broadcast, R"({"channels":["a","b","c"],"content":""})", l);
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.err.code, "too_many_channels");
}

TEST(ApiRequest, OtherMethods) {
  auto p = parse(ApiMethod::Broadcast, R"({"channels":["a","b"],"content":"x"})");
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.req.channels, (std::vector<std::string>{"a", "b"}));
  p = parse(ApiMethod::Disconnect, R"({"connection_id":42,"code":4001,"reason":"bye"})");
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.req.connection_id, 42u);
  EXPECT_EQ(p.req.code, 4001);
  EXPECT_EQ(p.req.reason, "bye");
  p = parse(ApiMethod::Disconnect, R"({"user":"alice"})");
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.req.code, 1000);
  p = parse(ApiMethod::History, R"({"channel":"c","since":{"epoch":"e1","offset":9},"limit":3})");
  ASSERT_TRUE(p.ok);
  EXPECT_TRUE(p.req.has_since);
  EXPECT_EQ(p.req.epoch, "e1");
  EXPECT_EQ(p.req.since, 9u);
  EXPECT_EQ(p.req.limit, 3u);
  // "channels" belongs to broadcast: elsewhere it is ignored like any other field.
  p = parse(ApiMethod::Info, R"({"channels":["'a"]})");
  ASSERT_TRUE(p.ok);
  EXPECT_TRUE(p.req.channels.empty());
  EXPECT_TRUE(parse(ApiMethod::Info, "").ok);
  EXPECT_TRUE(parse(ApiMethod::Channels, "{}").ok);
  EXPECT_FALSE(parse(ApiMethod::Info, "1").ok);
}

}  // namespace
}  // namespace wstrace::protocol
