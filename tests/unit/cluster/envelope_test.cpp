#include "cluster/envelope.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace wstrace::cluster {
namespace {

TraceContext trace(uint8_t seed, uint8_t flags) {
  TraceContext t;
  for (int i = 0; i < 16; ++i) t.trace_id[i] = static_cast<uint8_t>(seed + i);
  for (int i = 0; i < 8; ++i) t.span_id[i] = static_cast<uint8_t>(seed * 3 + i);
  t.flags = flags;
  return t;
}

bool same_trace(const TraceContext& a, const TraceContext& b) {
  return std::memcmp(a.trace_id, b.trace_id, 16) == 0 &&
         std::memcmp(a.span_id, b.span_id, 8) == 0 && a.flags == b.flags;
}

std::string encoded(const Envelope& e) {
  std::string out = "garbage that encode_envelope replaces";
  encode_envelope(e, out);
  return out;
}

TEST(Envelope, RoundTripWithTrace) {
  Envelope e;
  e.origin_node = 0x0123456789ABCDEFull;
  e.published_unix_ns = 1'700'000'000'123'456'789ull;
  e.has_trace = true;
  e.trace = trace(7, 1);
  e.content = "hello, cluster";
  std::string bytes = encoded(e);
  EXPECT_EQ(bytes.size(), kEnvelopeHeader + e.content.size());
  auto d = decode_envelope(bytes);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->origin_node, e.origin_node);
  EXPECT_EQ(d->published_unix_ns, e.published_unix_ns);
  EXPECT_TRUE(d->has_trace);
  EXPECT_TRUE(same_trace(d->trace, e.trace));
  EXPECT_EQ(d->content, "hello, cluster");
  // The content is a view into the decoded bytes, not a copy.
  EXPECT_EQ(d->content.data(), bytes.data() + kEnvelopeHeader);
}

TEST(Envelope, RoundTripWithoutTraceAndEmptyContent) {
  Envelope e;
  e.origin_node = ~0ull;
  e.published_unix_ns = 0;
  std::string bytes = encoded(e);
  EXPECT_EQ(bytes.size(), kEnvelopeHeader);
  auto d = decode_envelope(bytes);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->origin_node, ~0ull);
  EXPECT_EQ(d->published_unix_ns, 0u);
  EXPECT_FALSE(d->has_trace);
  EXPECT_FALSE(d->trace.valid());
  EXPECT_TRUE(d->content.empty());
}

TEST(Envelope, BinaryContentWithNulBytes) {
  std::string content("a\0b\0\0\xff\xfe\x01WSt1", 12);
  content += std::string(70000, '\0');
  Envelope e;
  e.origin_node = 42;
  e.content = content;
  std::string bytes = encoded(e);
  auto d = decode_envelope(bytes);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->content.size(), content.size());
  EXPECT_EQ(d->content, content);
}

TEST(Envelope, WireFormatIsLittleEndian) {
  // Pinned: other nodes (and tests/integration/cluster) build these bytes.
  Envelope e;
  e.origin_node = 0x0102030405060708ull;
  e.published_unix_ns = 0x1112131415161718ull;
  e.has_trace = true;
  e.trace = trace(1, 1);
  e.content = "xy";
  std::string want = "WSt1";
  want += std::string("\x08\x07\x06\x05\x04\x03\x02\x01", 8);
  want += std::string("\x18\x17\x16\x15\x14\x13\x12\x11", 8);
  want += std::string("\x01\x01", 2);  // flags, has-trace
  for (int i = 0; i < 16; ++i) want.push_back(static_cast<char>(1 + i));
  for (int i = 0; i < 8; ++i) want.push_back(static_cast<char>(3 + i));
  want += "xy";
  EXPECT_EQ(encoded(e), want);
}

TEST(Envelope, EveryTruncationIsRejected) {
  Envelope e;
  e.origin_node = 1;
  e.has_trace = true;
  e.trace = trace(9, 0);
  std::string bytes = encoded(e);
  ASSERT_EQ(bytes.size(), kEnvelopeHeader);
  for (size_t n = 0; n < kEnvelopeHeader; ++n) {
    EXPECT_FALSE(decode_envelope(std::string_view(bytes).substr(0, n))) << n << " bytes";
  }
  EXPECT_TRUE(decode_envelope(bytes));
}

TEST(Envelope, MalformedHeadersAreRejected) {
  Envelope e;
  e.has_trace = true;
  e.trace = trace(5, 1);
  e.content = "payload";
  const std::string good = encoded(e);
  ASSERT_TRUE(decode_envelope(good));

  for (const char* magic : {"WSt2", "wst1", "WSt\0", "XSt1", "\0\0\0\0"}) {
    std::string bad = good;
    bad.replace(0, 4, magic, 4);
    EXPECT_FALSE(decode_envelope(bad)) << "magic " << std::string(magic, 4);
  }
  for (uint8_t has : {2, 3, 0x80, 0xFF}) {
    std::string bad = good;
    bad[21] = static_cast<char>(has);
    EXPECT_FALSE(decode_envelope(bad)) << "has-trace " << int(has);
  }
  // Says it has a trace, but the ids are zero (invalid per W3C).
  std::string zero_trace = good;
  std::memset(zero_trace.data() + 22, 0, 16);
  EXPECT_FALSE(decode_envelope(zero_trace));
  std::string zero_span = good;
  std::memset(zero_span.data() + 38, 0, 8);
  EXPECT_FALSE(decode_envelope(zero_span));
  EXPECT_FALSE(decode_envelope("plain text, not an envelope at all, long enough to pass the size"));
}

TEST(Envelope, TraceBytesAreIgnoredWithoutTheFlag) {
  Envelope e;
  e.has_trace = true;
  e.trace = trace(5, 1);
  std::string bytes = encoded(e);
  bytes[21] = 0;  // has-trace 0, ids and flags still there
  auto d = decode_envelope(bytes);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->has_trace);
  EXPECT_TRUE(same_trace(d->trace, TraceContext{}));
}

TEST(Pubsub, PublicationWithItsPosition) {
  auto m = decode_pubsub("Pa1b2C3:42:WSt1rest-of-envelope");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->kind, PubsubMessage::Kind::Publication);
  EXPECT_EQ(m->epoch, "a1b2C3");
  EXPECT_EQ(m->offset, 42u);
  EXPECT_EQ(m->envelope, "WSt1rest-of-envelope");
  // The envelope may hold any byte, ':' included.
  std::string binary = std::string("Pe:1:") + std::string("\0:\xff:", 4);
  m = decode_pubsub(binary);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->envelope.size(), 4u);
  EXPECT_EQ(m->offset, 1u);
}

TEST(Pubsub, Markers) {
  std::string marker = encode_marker(0x0123456789abcdefull, 77);
  EXPECT_EQ(marker, "M0123456789abcdef:77");
  auto m = decode_pubsub(marker);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->kind, PubsubMessage::Kind::Marker);
  EXPECT_EQ(m->node, 0x0123456789abcdefull);
  EXPECT_EQ(m->read, 77u);
}

TEST(Pubsub, MalformedIsRefused) {
  for (const char* bad :
       {"", "X", "P", "Pe", "Pe:", "Pe:1", ":1:x", "P:1:x", "Pe:0:x", "Pe:-1:x", "Pe:1x:x",
        "Pe!:1:x", "Pe:99999999999999999999:x", "M", "M0123:1", "M0123456789abcdeX:1",
        "M0123456789ABCDEF:1", "M0123456789abcdef:", "M0123456789abcdef:x", "M0123456789abcdef1"}) {
    EXPECT_FALSE(decode_pubsub(bad)) << bad;
  }
  EXPECT_FALSE(decode_pubsub("P" + std::string(65, 'e') + ":1:x"));  // epoch too long
  EXPECT_TRUE(decode_pubsub("P" + std::string(64, 'e') + ":1:x"));
}

TEST(Pubsub, EntryIds) {
  EXPECT_EQ(parse_entry_id("1-0"), 1u);
  EXPECT_EQ(parse_entry_id("18446744073709551615-0"), 18446744073709551615ull);
  for (const char* bad : {"", "0-0", "1-1", "1", "-0", "a-0", "1-0-0", "18446744073709551616-0"}) {
    EXPECT_FALSE(parse_entry_id(bad)) << bad;
  }
  EXPECT_TRUE(valid_epoch("0f4033cfbc197525"));
  EXPECT_FALSE(valid_epoch(""));
  EXPECT_FALSE(valid_epoch("has space"));
}

}  // namespace
}  // namespace wstrace::cluster
