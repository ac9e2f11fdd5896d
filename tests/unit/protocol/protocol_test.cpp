// The client protocol of PRODUCT.md §2: every message type, every error code
// the parser produces, the id echo, channel rules, and the encoders checked
// byte for byte and by parsing their output back with simdjson.
#include "protocol/protocol.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>

namespace wstrace::protocol {
namespace {

class ProtocolTest : public ::testing::Test {
 protected:
  // The parser needs Buffer::kPadding readable bytes after the message.
  bool parse(std::string_view json) {
    in_.clear();
    in_.append(json);
    return parser_.parse(in_.data(), in_.size(), msg_, err_);
  }
  void expect_error(std::string_view json, ErrorCode code) {
    EXPECT_FALSE(parse(json)) << json;
    EXPECT_EQ(err_.code, code) << json << " -> " << error_code_name(err_.code);
    EXPECT_FALSE(err_.message.empty()) << json;
  }

  Parser parser_{1 << 16};
  Buffer in_;
  ClientMessage msg_;
  ParseError err_{};
};

std::string encoded(void (*f)(Buffer&, const Id&), const Id& id) {
  Buffer b;
  f(b, id);
  return std::string(b.view());
}

TEST_F(ProtocolTest, Ping) {
  ASSERT_TRUE(parse(R"({"type":"Ping"})"));
  EXPECT_EQ(msg_.type, Type::Ping);
  EXPECT_EQ(msg_.id.kind, Id::Kind::None);
  EXPECT_TRUE(msg_.traceparent.empty());
  // A Ping needs no channel, and a bad one is not looked at.
  ASSERT_TRUE(parse(R"({"type":"Ping","channel":"bad channel!"})"));
  EXPECT_EQ(msg_.type, Type::Ping);
}

TEST_F(ProtocolTest, SubscribeUnsubscribeMessage) {
  ASSERT_TRUE(parse(R"({"type":"Subscribe","channel":"room:1"})"));
  EXPECT_EQ(msg_.type, Type::Subscribe);
  EXPECT_EQ(msg_.channel, "room:1");
  ASSERT_TRUE(parse(R"({"channel":"a/b-c_d.e","type":"Unsubscribe"})"));
  EXPECT_EQ(msg_.type, Type::Unsubscribe);
  EXPECT_EQ(msg_.channel, "a/b-c_d.e");
  ASSERT_TRUE(parse(R"({"type":"Message","channel":"news","content":"hi \"there\"\n\u00e9\ud83d\ude00"})"));
  EXPECT_EQ(msg_.type, Type::Message);
  EXPECT_EQ(msg_.channel, "news");
  EXPECT_EQ(msg_.content, "hi \"there\"\n\xC3\xA9\xF0\x9F\x98\x80");  // unescaped
  ASSERT_TRUE(parse(R"({"type":"Message","channel":"news","content":""})"));
  EXPECT_EQ(msg_.content, "");
}

TEST_F(ProtocolTest, SubscribeWithSinceAndHistory) {
  ASSERT_TRUE(parse(R"({"type":"Subscribe","channel":"room:1","since":{"epoch":"e1","offset":50}})"));
  EXPECT_EQ(msg_.type, Type::Subscribe);
  EXPECT_TRUE(msg_.since.present);
  EXPECT_EQ(msg_.since.epoch, "e1");
  EXPECT_EQ(msg_.since.offset, 50u);
  ASSERT_TRUE(parse(R"({"type":"Subscribe","channel":"room:1"})"));
  EXPECT_FALSE(msg_.since.present);
  ASSERT_TRUE(parse(R"({"type":"History","channel":"room:1","limit":10,"id":3})"));
  EXPECT_EQ(msg_.type, Type::History);
  EXPECT_TRUE(msg_.has_limit);
  EXPECT_EQ(msg_.limit, 10u);
  EXPECT_EQ(msg_.id.kind, Id::Kind::Int);
  ASSERT_TRUE(parse(R"({"type":"History","channel":"c","since":{"offset":0,"epoch":"x"}})"));
  EXPECT_EQ(msg_.since.offset, 0u);
  ASSERT_TRUE(parse(R"({"type":"History","channel":"c","limit":99999999999})"));
  EXPECT_EQ(msg_.limit, UINT32_MAX);
  expect_error(R"({"type":"History"})", ErrorCode::MissingField);
  expect_error(R"({"type":"History","channel":"bad name"})", ErrorCode::InvalidChannel);
}

TEST_F(ProtocolTest, BadSinceOrLimitNamesTheField) {
  for (const char* bad : {
           R"({"type":"Subscribe","channel":"c","since":5})",
           R"({"type":"Subscribe","channel":"c","since":{"epoch":"e"}})",
           R"({"type":"Subscribe","channel":"c","since":{"offset":1}})",
           R"({"type":"Subscribe","channel":"c","since":{"epoch":1,"offset":1}})",
           R"({"type":"Subscribe","channel":"c","since":{"epoch":"e","offset":-1}})",
           R"({"type":"Subscribe","channel":"c","since":{"epoch":"e","offset":1.5}})",
           R"({"type":"Subscribe","channel":"c","since":{"epoch":"e","offset":"1"}})",
           R"({"type":"History","channel":"c","limit":-1})",
           R"({"type":"History","channel":"c","limit":"3"})"}) {
    expect_error(bad, ErrorCode::InvalidJson);
    const bool names_field = err_.message.find("since") != std::string_view::npos ||
                             err_.message.find("limit") != std::string_view::npos;
    EXPECT_TRUE(names_field) << bad << " -> " << err_.message;
  }
}

TEST_F(ProtocolTest, WhitespaceAndFieldOrderDoNotMatter) {
  ASSERT_TRUE(parse(" \n{ \"content\" : \"x\" ,\t\"channel\":\"c\", \"type\" :\"Message\" }\r\n"));
  EXPECT_EQ(msg_.type, Type::Message);
  EXPECT_EQ(msg_.content, "x");
}

TEST_F(ProtocolTest, UnknownFieldsAreIgnored) {
  ASSERT_TRUE(parse(
      R"({"type":"Subscribe","channel":"c","extra":{"nested":[1,2,{"type":"Ping"}]},"n":null,"b":true,"x":1.5})"));
  EXPECT_EQ(msg_.type, Type::Subscribe);
  EXPECT_EQ(msg_.channel, "c");
}

TEST_F(ProtocolTest, Traceparent) {
  ASSERT_TRUE(parse(
      R"({"type":"Ping","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})"));
  EXPECT_EQ(msg_.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  expect_error(R"({"type":"Ping","traceparent":7})", ErrorCode::InvalidJson);
}

TEST_F(ProtocolTest, IdKinds) {
  ASSERT_TRUE(parse(R"({"type":"Ping","id":"req-1"})"));
  EXPECT_EQ(msg_.id.kind, Id::Kind::String);
  EXPECT_EQ(msg_.id.str, "req-1");
  ASSERT_TRUE(parse(R"({"type":"Ping","id":-42})"));
  EXPECT_EQ(msg_.id.kind, Id::Kind::Int);
  EXPECT_EQ(msg_.id.i, -42);
  ASSERT_TRUE(parse(R"({"type":"Ping","id":7})"));
  EXPECT_EQ(msg_.id.kind, Id::Kind::Int);
  EXPECT_EQ(msg_.id.i, 7);
  ASSERT_TRUE(parse(R"({"type":"Ping","id":18446744073709551615})"));
  EXPECT_EQ(msg_.id.kind, Id::Kind::Uint);
  EXPECT_EQ(msg_.id.u, 18446744073709551615ull);
  ASSERT_TRUE(parse(R"({"type":"Ping","id":1.5})"));
  EXPECT_EQ(msg_.id.kind, Id::Kind::Double);
  EXPECT_EQ(msg_.id.d, 1.5);
  ASSERT_TRUE(parse(R"({"type":"Ping","id":""})"));
  EXPECT_EQ(msg_.id.kind, Id::Kind::String);
  EXPECT_EQ(msg_.id.str, "");
  for (const char* bad : {R"({"type":"Ping","id":null})", R"({"type":"Ping","id":true})",
                          R"({"type":"Ping","id":{}})", R"({"type":"Ping","id":[1]})"}) {
    expect_error(bad, ErrorCode::InvalidJson);
  }
}

TEST_F(ProtocolTest, IdEchoRoundTrip) {
  // Whatever id came in goes back out as the same JSON value.
  for (const char* id : {R"("abc")", R"("with \"quotes\" and \\ and \u0001")", "0", "-1",
                         "9223372036854775807", "-9223372036854775808", "18446744073709551615",
                         "0.5", "-2.25e-7", "1e300", "123456789.125", "5.0", "-0.0", "1e20",
                         "98446744073709516e4", "1.2345678901234567e20"}) {
    std::string in = std::string(R"({"type":"Ping","id":)") + id + "}";
    ASSERT_TRUE(parse(in)) << in;
    std::string out = encoded(encode_pong, msg_.id);
    simdjson::dom::parser p;
    simdjson::dom::element a, b;
    ASSERT_EQ(p.parse(in).get(a), simdjson::SUCCESS);
    std::string a_id = simdjson::minify(a["id"]);
    simdjson::dom::parser p2;
    ASSERT_EQ(p2.parse(out).get(b), simdjson::SUCCESS) << out;
    EXPECT_EQ(std::string_view(b["type"]), "Pong");
    // Compare as values (a double may print differently but must be equal).
    simdjson::dom::element ai = a["id"], bi = b["id"];
    EXPECT_EQ(ai.type(), bi.type()) << out;
    if (ai.is_string()) {
      EXPECT_EQ(std::string_view(ai), std::string_view(bi));
    } else if (ai.is_int64()) {
      EXPECT_EQ(int64_t(ai), int64_t(bi));
    } else if (ai.is_uint64()) {
      EXPECT_EQ(uint64_t(ai), uint64_t(bi));
    } else {
      EXPECT_EQ(double(ai), double(bi)) << out;
    }
  }
}

TEST_F(ProtocolTest, InvalidJson) {
  for (const char* bad : {"", " ", "{", "}", "nope", R"({"type":"Ping")", R"({"type":"Ping",})",
                          R"({type:"Ping"})", R"({'type':'Ping'})", R"({"type":"Ping"}})",
                          R"({"type":"Ping"} {"type":"Ping"})", "[1,2]", R"("Ping")", "42",
                          "null", "true", R"({"type":"Ping","content":"\x"})",
                          R"({"type":"Message","channel":"c","content":"\ud800"})",
                          "{\"type\":\"Ping\",\"s\":\"raw\x01control\"}",
                          "{\"type\":\"Ping\",\"s\":\"\xff\"}"}) {
    expect_error(bad, ErrorCode::InvalidJson);
    EXPECT_EQ(err_.id.kind, Id::Kind::None) << bad;
  }
  std::string deep(2000, '[');
  deep += std::string(2000, ']');
  expect_error("{\"type\":\"Ping\",\"x\":" + deep + "}", ErrorCode::InvalidJson);
}

TEST_F(ProtocolTest, WrongFieldTypes) {
  expect_error(R"({"type":1})", ErrorCode::InvalidJson);
  expect_error(R"({"type":null})", ErrorCode::InvalidJson);
  expect_error(R"({"type":["Ping"]})", ErrorCode::InvalidJson);
  expect_error(R"({"type":"Subscribe","channel":5})", ErrorCode::InvalidJson);
  expect_error(R"({"type":"Message","channel":"c","content":{"a":1}})", ErrorCode::InvalidJson);
  expect_error(R"({"type":"Message","channel":"c","content":null})", ErrorCode::InvalidJson);
}

TEST_F(ProtocolTest, MissingFields) {
  expect_error("{}", ErrorCode::MissingField);
  expect_error(R"({"channel":"c"})", ErrorCode::MissingField);
  expect_error(R"({"type":"Subscribe"})", ErrorCode::MissingField);
  expect_error(R"({"type":"Unsubscribe"})", ErrorCode::MissingField);
  expect_error(R"({"type":"Message","content":"x"})", ErrorCode::MissingField);
  expect_error(R"({"type":"Message","channel":"c"})", ErrorCode::MissingField);
}

TEST_F(ProtocolTest, UnknownType) {
  for (const char* t : {"ping", "PING", "Pong", "Subscribed", "Error", "", "Ping ", "Publish"}) {
    expect_error(std::string(R"({"type":")") + t + "\"}", ErrorCode::UnknownType);
  }
}

TEST_F(ProtocolTest, ErrorsEchoTheId) {
  expect_error(R"({"type":"Nope","id":"r1"})", ErrorCode::UnknownType);
  EXPECT_EQ(err_.id.kind, Id::Kind::String);
  EXPECT_EQ(err_.id.str, "r1");
  expect_error(R"({"id":17,"type":"Subscribe"})", ErrorCode::MissingField);
  EXPECT_EQ(err_.id.kind, Id::Kind::Int);
  EXPECT_EQ(err_.id.i, 17);
  expect_error(R"({"type":"Subscribe","channel":"bad channel","id":2.5})",
               ErrorCode::InvalidChannel);
  EXPECT_EQ(err_.id.kind, Id::Kind::Double);
  expect_error(R"({"id":"x"})", ErrorCode::MissingField);
  EXPECT_EQ(err_.id.str, "x");
  // A failure after a good message does not carry the old id.
  ASSERT_TRUE(parse(R"({"type":"Ping","id":"old"})"));
  expect_error(R"({"type":"Nope"})", ErrorCode::UnknownType);
  EXPECT_EQ(err_.id.kind, Id::Kind::None);
}

TEST_F(ProtocolTest, ChannelRules) {
  auto sub = [&](const std::string& ch) {
    return parse(R"({"type":"Subscribe","channel":")" + ch + "\"}");
  };
  EXPECT_TRUE(sub("a"));
  EXPECT_TRUE(sub(std::string(128, 'x')));
  EXPECT_TRUE(sub("AZaz09_.:/-"));
  EXPECT_TRUE(sub("/"));
  for (const std::string& bad :
       {std::string(), std::string(129, 'x'), std::string("a b"), std::string("a#b"),
        std::string("a*"), std::string("a?"), std::string("a,b"), std::string("a+b"),
        std::string("caf\xC3\xA9"), std::string("a\\\\b"), std::string("a\\u0000b"),
        std::string("a\\tb"), std::string("a\\\"b"), std::string("a@b"), std::string("~"),
        std::string("a%20b"), std::string("a=b")}) {
    EXPECT_FALSE(sub(bad)) << bad;
    EXPECT_EQ(err_.code, ErrorCode::InvalidChannel) << bad;
  }
  EXPECT_FALSE(parse(R"({"type":"Unsubscribe","channel":""})"));
  EXPECT_EQ(err_.code, ErrorCode::InvalidChannel);
  EXPECT_FALSE(parse(R"({"type":"Message","channel":"a b","content":"x"})"));
  EXPECT_EQ(err_.code, ErrorCode::InvalidChannel);
}

TEST(ValidChannel, Boundaries) {
  EXPECT_FALSE(valid_channel(""));
  EXPECT_TRUE(valid_channel("a"));
  EXPECT_TRUE(valid_channel(std::string(kMaxChannelLength, 'z')));
  EXPECT_FALSE(valid_channel(std::string(kMaxChannelLength + 1, 'z')));
  for (int c = 0; c < 256; ++c) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
                         c == '/' || c == '-';
    EXPECT_EQ(valid_channel(std::string(1, static_cast<char>(c))), allowed) << c;
    EXPECT_EQ(valid_channel("ok" + std::string(1, static_cast<char>(c)) + "ok"), allowed) << c;
  }
}

TEST_F(ProtocolTest, ViewsStayValidUntilTheNextParse) {
  ASSERT_TRUE(parse(R"({"type":"Message","channel":"c1","content":"first"})"));
  std::string_view content = msg_.content;
  in_.clear();  // the input buffer may be reused: the views point into the parser
  in_.append("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
  EXPECT_EQ(content, "first");
}

TEST_F(ProtocolTest, LargestMessage) {
  Parser small(4096);
  std::string content(4096 - 60, 'c');
  std::string json = R"({"type":"Message","channel":"c","content":")" + content + "\"}";
  ASSERT_LE(json.size(), 4096u);
  Buffer b;
  b.append(json);
  ClientMessage m;
  ParseError e{};
  ASSERT_TRUE(small.parse(b.data(), b.size(), m, e));
  EXPECT_EQ(m.content, content);
}

TEST(ProtocolNames, TypesAndErrorCodes) {
  EXPECT_EQ(type_name(Type::Ping), "Ping");
  EXPECT_EQ(type_name(Type::Subscribe), "Subscribe");
  EXPECT_EQ(type_name(Type::Unsubscribe), "Unsubscribe");
  EXPECT_EQ(type_name(Type::Message), "Message");
  EXPECT_EQ(type_name(Type::History), "History");
  EXPECT_EQ(type_name(Type::Presence), "Presence");
  // The documented codes, in this order (docs/PROTOCOL.md).
  const char* want[] = {"invalid_json",          "unknown_type",   "missing_field",
                        "invalid_channel",       "message_too_large",
                        "too_many_subscriptions", "not_subscribed", "unsupported_frame",
                        "rate_limited",          "unauthorized",   "unavailable",
                        "forbidden",             "not_enabled"};
  ASSERT_EQ(kErrorCodeCount, 13);
  for (int i = 0; i < kErrorCodeCount; ++i) {
    EXPECT_EQ(error_code_name(static_cast<ErrorCode>(i)), want[i]);
  }
}

// ---------------------------------------------------------------------------
// Encoders.

TEST(Encoders, ExactBytes) {
  Id none;
  Id s{Id::Kind::String, "r\"1"};
  Id i{Id::Kind::Int, {}, -5};
  Id u{Id::Kind::Uint, {}, 0, 18446744073709551615ull};
  Id d{Id::Kind::Double, {}, 0, 0, 0.25};
  EXPECT_EQ(encoded(encode_pong, none), R"({"type":"Pong"})");
  EXPECT_EQ(encoded(encode_pong, s), R"({"type":"Pong","id":"r\"1"})");
  EXPECT_EQ(encoded(encode_pong, i), R"({"type":"Pong","id":-5})");
  EXPECT_EQ(encoded(encode_pong, u), R"({"type":"Pong","id":18446744073709551615})");
  EXPECT_EQ(encoded(encode_pong, d), R"({"type":"Pong","id":0.25})");
  // A whole double stays a floating-point literal.
  Id whole{Id::Kind::Double, {}, 0, 0, 5.0};
  EXPECT_EQ(encoded(encode_pong, whole), R"({"type":"Pong","id":5.0})");
  Id big{Id::Kind::Double, {}, 0, 0, 9.8446744073709516e20};
  EXPECT_EQ(encoded(encode_pong, big), R"({"type":"Pong","id":984467440737095122944.0})");
  Buffer b;
  encode_subscribed(b, "room:1", none, "e1", 0);
  EXPECT_EQ(b.view(), R"({"type":"Subscribed","channel":"room:1","epoch":"e1","offset":0})");
  b.clear();
  encode_subscribed(b, "room:1", i, "e1", 7, 1);
  EXPECT_EQ(b.view(),
            R"({"type":"Subscribed","channel":"room:1","epoch":"e1","offset":7,"recovered":true,"id":-5})");
  b.clear();
  encode_subscribed(b, "room:1", none, "e2", 3, 0);
  EXPECT_EQ(b.view(),
            R"({"type":"Subscribed","channel":"room:1","epoch":"e2","offset":3,"recovered":false})");
  b.clear();
  encode_published(b, "room:1", s, "e1", 8);
  EXPECT_EQ(b.view(),
            R"({"type":"Published","channel":"room:1","epoch":"e1","offset":8,"id":"r\"1"})");
  b.clear();
  encode_history_begin(b, "room:1", "e1", 9, -1);
  encode_history_entry(b, true, 8, "a");
  encode_history_entry(b, false, 9, "b\"");
  encode_history_end(b, i);
  EXPECT_EQ(b.view(),
            R"({"type":"History","channel":"room:1","epoch":"e1","offset":9,"messages":[{"offset":8,"content":"a"},{"offset":9,"content":"b\""}],"id":-5})");
  b.clear();
  encode_history_begin(b, "c", "e1", 0, 0);
  encode_history_end(b, none);
  EXPECT_EQ(b.view(), R"({"type":"History","channel":"c","epoch":"e1","offset":0,"recovered":false,"messages":[]})");
  b.clear();
  encode_unsubscribed(b, "room:1", i);
  EXPECT_EQ(b.view(), R"({"type":"Unsubscribed","channel":"room:1","id":-5})");
  b.clear();
  encode_error(b, ErrorCode::NotSubscribed, "not subscribed to \"x\"", s);
  EXPECT_EQ(b.view(),
            R"({"type":"Error","code":"not_subscribed","message":"not subscribed to \"x\"","id":"r\"1"})");
  b.clear();
  encode_message(b, "news", "line1\nline2\t\"q\" \\ \x01", 12);
  EXPECT_EQ(b.view(),
            R"({"type":"Message","channel":"news","content":"line1\nline2\t\"q\" \\ \u0001","offset":12})");
  b.clear();
  encode_message(b, "t", "x", 3, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_EQ(b.view(),
            R"({"type":"Message","channel":"t","content":"x","offset":3,)"
            R"("traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})");
}

TEST(Encoders, RoundTripThroughSimdjson) {
  std::string content;
  for (int c = 0; c < 128; ++c) content.push_back(static_cast<char>(c));
  content += "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xE2\x80\xA8";
  for (int code = 0; code < kErrorCodeCount; ++code) {
    Buffer b;
    Id id{Id::Kind::String, content};
    encode_error(b, static_cast<ErrorCode>(code), content, id);
    simdjson::dom::parser p;
    simdjson::dom::element e;
    ASSERT_EQ(p.parse(std::string(b.view())).get(e), simdjson::SUCCESS) << b.view();
    EXPECT_EQ(std::string_view(e["type"]), "Error");
    EXPECT_EQ(std::string_view(e["code"]), error_code_name(static_cast<ErrorCode>(code)));
    EXPECT_EQ(std::string_view(e["message"]), content);
    EXPECT_EQ(std::string_view(e["id"]), content);
  }
  Buffer b;
  encode_message(b, "a/b", content, 18446744073709551615ull);
  simdjson::dom::parser p;
  simdjson::dom::element e;
  ASSERT_EQ(p.parse(std::string(b.view())).get(e), simdjson::SUCCESS);
  EXPECT_EQ(std::string_view(e["channel"]), "a/b");
  EXPECT_EQ(std::string_view(e["content"]), content);
  EXPECT_EQ(uint64_t(e["offset"]), 18446744073709551615ull);
}

TEST_F(ProtocolTest, WhatWeSendParsesBackAsTheSameMessage) {
  // The broadcast frame is itself a valid client Message.
  Buffer b;
  encode_message(b, "chat:room-1", "he said \"hi\"\n", 3);
  ASSERT_TRUE(parse(b.view()));
  EXPECT_EQ(msg_.type, Type::Message);
  EXPECT_EQ(msg_.channel, "chat:room-1");
  EXPECT_EQ(msg_.content, "he said \"hi\"\n");
}

}  // namespace
}  // namespace wstrace::protocol
