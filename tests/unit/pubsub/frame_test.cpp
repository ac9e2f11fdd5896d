#include "pubsub/frame.h"

#include <gtest/gtest.h>

#include <string>

#include "refs.h"
#include "ws/frame.h"

namespace wstrace::pubsub {
namespace {

using test::refs;

TEST(SharedFrame, BuildsAServerFrame) {
  Frame* f = Frame::make(ws::Opcode::Text, std::string_view("Hello"));
  ASSERT_EQ(f->size(), 7u);
  EXPECT_EQ(f->payload_size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data()), f->size()),
            "\x81\x05Hello");  // RFC 6455 §5.7, unmasked
  f->unref();
}

TEST(SharedFrame, HeaderSizesAndRsv1) {
  for (size_t n : {0u, 125u, 126u, 65535u, 65536u, 200000u}) {
    std::string payload(n, 'p');
    Frame* f = Frame::make(ws::Opcode::Binary, payload, /*rsv1=*/true);
    ws::FrameHeader h;
    ASSERT_EQ(ws::parse_header(f->data(), f->size(), h), ws::HeaderStatus::Ok);
    EXPECT_TRUE(h.fin);
    EXPECT_TRUE(h.rsv1);
    EXPECT_FALSE(h.masked);
    EXPECT_EQ(h.opcode, 0x2);
    EXPECT_EQ(h.payload_size, n);
    EXPECT_EQ(f->size(), h.header_size + n);
    EXPECT_EQ(f->payload_size(), n);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data()) + h.header_size, n), payload);
    f->unref();
  }
}

TEST(SharedFrame, RawBytes) {
  Frame* f = Frame::make_raw("HTTP/1.1 101 Switching Protocols\r\n\r\n");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data()), f->size()),
            "HTTP/1.1 101 Switching Protocols\r\n\r\n");
  f->unref();
}

TEST(SharedFrame, ReferenceCounting) {
  Frame* f = Frame::make(ws::Opcode::Ping, std::string_view(""));
  EXPECT_EQ(refs(f), 1u);
  f->ref();
  f->ref();
  EXPECT_EQ(refs(f), 3u);
  f->unref();
  EXPECT_EQ(refs(f), 2u);
  {
    FrameRef a(f);  // adopts one
    FrameRef b(std::move(a));
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(b.get(), f);
    EXPECT_EQ(refs(f), 2u);
    FrameRef c;
    c = std::move(b);
    EXPECT_EQ(c->size(), 2u);
  }
  EXPECT_EQ(refs(f), 1u);
  FrameRef last(f);
  FrameRef other(Frame::make(ws::Opcode::Pong, std::string_view("x")));
  last = std::move(other);  // releases f (ASan reports it if it leaked or double-freed)
  EXPECT_EQ(last->payload_size(), 1u);
}

TEST(SharedFrame, PublicationTimesTravelWithTheFrame) {
  Frame* plain = Frame::make(ws::Opcode::Text, std::string_view("x"));
  EXPECT_EQ(plain->stamp_count(), 0u);
  const uint8_t p[] = {'a', 'b'};
  Frame* a = Frame::make(ws::Opcode::Text, p, 2, false, 1111);
  Frame* b = Frame::make(ws::Opcode::Text, p, 1, true, 2222);
  ASSERT_EQ(a->stamp_count(), 1u);
  EXPECT_EQ(a->stamp(0), 1111u);
  EXPECT_EQ(a->size(), 4u);  // the time is not part of the bytes sent
  Frame* parts[] = {a, plain, b};
  Frame* run = Frame::concat(parts, 3);
  EXPECT_EQ(run->size(), a->size() + plain->size() + b->size());
  ASSERT_EQ(run->stamp_count(), 2u);
  EXPECT_EQ(run->stamp(0), 1111u);
  EXPECT_EQ(run->stamp(1), 2222u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(run->data()), run->size()),
            std::string("\x81\x02" "ab" "\x81\x01x" "\xc1\x01" "a", 10));
  for (Frame* f : {plain, a, b, run}) f->unref();
}

}  // namespace
}  // namespace wstrace::pubsub
