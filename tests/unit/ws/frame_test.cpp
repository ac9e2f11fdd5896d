// RFC 6455 §5.2 frame headers and §5.3 masking, with the §5.7 examples.
#include "ws/frame.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "ws_test_util.h"

namespace wstrace::ws {
namespace {

using test::bytes;

FrameHeader parse_ok(const std::string& s) {
  FrameHeader h;
  EXPECT_EQ(parse_header(reinterpret_cast<const uint8_t*>(s.data()), s.size(), h),
            HeaderStatus::Ok);
  return h;
}

TEST(FrameHeader, Rfc6455UnmaskedHello) {
  // §5.7: a single-frame unmasked text message.
  FrameHeader h = parse_ok(bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  EXPECT_TRUE(h.fin);
  EXPECT_FALSE(h.rsv1 || h.rsv2 || h.rsv3);
  EXPECT_EQ(h.opcode, 0x1);
  EXPECT_FALSE(h.masked);
  EXPECT_EQ(h.header_size, 2);
  EXPECT_EQ(h.payload_size, 5u);
}

TEST(FrameHeader, Rfc6455MaskedHello) {
  std::string f = bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  FrameHeader h = parse_ok(f);
  EXPECT_TRUE(h.fin);
  EXPECT_EQ(h.opcode, 0x1);
  EXPECT_TRUE(h.masked);
  EXPECT_EQ(h.header_size, 6);
  EXPECT_EQ(h.payload_size, 5u);
  EXPECT_EQ(h.mask[0], 0x37);
  EXPECT_EQ(h.mask[3], 0x3d);
  auto* p = reinterpret_cast<uint8_t*>(f.data()) + h.header_size;
  apply_mask(p, 5, h.mask);
  EXPECT_EQ(f.substr(6), "Hello");
}

TEST(FrameHeader, Rfc6455FragmentsPingAndPong) {
  FrameHeader first = parse_ok(bytes({0x01, 0x03, 0x48, 0x65, 0x6c}));
  EXPECT_FALSE(first.fin);
  EXPECT_EQ(first.opcode, 0x1);
  EXPECT_EQ(first.payload_size, 3u);
  FrameHeader last = parse_ok(bytes({0x80, 0x02, 0x6c, 0x6f}));
  EXPECT_TRUE(last.fin);
  EXPECT_EQ(last.opcode, 0x0);
  EXPECT_EQ(last.payload_size, 2u);
  FrameHeader ping = parse_ok(bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  EXPECT_TRUE(ping.fin);
  EXPECT_EQ(ping.opcode, 0x9);
  EXPECT_TRUE(is_control(ping.opcode));
  FrameHeader pong =
      parse_ok(bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  EXPECT_EQ(pong.opcode, 0xA);
  EXPECT_TRUE(pong.masked);
  EXPECT_EQ(pong.payload_size, 5u);
}

TEST(FrameHeader, Rfc6455SixteenAndSixtyFourBitLengths) {
  // 256 bytes of binary data in a single unmasked message.
  FrameHeader h256 = parse_ok(bytes({0x82, 0x7E, 0x01, 0x00}));
  EXPECT_EQ(h256.opcode, 0x2);
  EXPECT_EQ(h256.header_size, 4);
  EXPECT_EQ(h256.payload_size, 256u);
  // 64KiB of binary data.
  FrameHeader h64k = parse_ok(bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}));
  EXPECT_EQ(h64k.header_size, 10);
  EXPECT_EQ(h64k.payload_size, 65536u);
  // Masked 64-bit length: 14-byte header.
  FrameHeader big = parse_ok(bytes({0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4}));
  EXPECT_EQ(big.header_size, kMaxHeaderSize);
  EXPECT_EQ(big.payload_size, 1ull << 32);
  EXPECT_EQ(big.mask[2], 3);
}

TEST(FrameHeader, NeedsMoreUntilTheWholeHeaderArrived) {
  for (const std::string& f : {bytes({0x81, 0x85, 1, 2, 3, 4}), bytes({0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4}),
                               bytes({0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4}),
                               bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0})}) {
    for (size_t n = 0; n < f.size(); ++n) {
      FrameHeader h;
      EXPECT_EQ(parse_header(reinterpret_cast<const uint8_t*>(f.data()), n, h),
                HeaderStatus::NeedMore)
          << n;
    }
    FrameHeader h;
    EXPECT_EQ(parse_header(reinterpret_cast<const uint8_t*>(f.data()), f.size(), h),
              HeaderStatus::Ok);
    EXPECT_EQ(h.header_size, f.size());
  }
}

TEST(FrameHeader, MostSignificantLengthBitMustBeZero) {
  std::string f = bytes({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4});
  FrameHeader h;
  EXPECT_EQ(parse_header(reinterpret_cast<const uint8_t*>(f.data()), f.size(), h),
            HeaderStatus::BadLength);
  f[2] = 0x7f;  // the largest legal length parses
  EXPECT_EQ(parse_header(reinterpret_cast<const uint8_t*>(f.data()), f.size(), h),
            HeaderStatus::Ok);
  EXPECT_EQ(h.payload_size, 0x7f00000000000000ull);
}

TEST(FrameHeader, AllFlagBits) {
  FrameHeader h = parse_ok(bytes({0x7F, 0x00}));
  EXPECT_FALSE(h.fin);
  EXPECT_TRUE(h.rsv1);
  EXPECT_TRUE(h.rsv2);
  EXPECT_TRUE(h.rsv3);
  EXPECT_EQ(h.opcode, 0xF);
  EXPECT_TRUE(is_control(0x8) && is_control(0xF));
  EXPECT_FALSE(is_control(0x0) || is_control(0x7));
}

TEST(FrameHeader, WriteUsesTheShortestLengthAndParsesBack) {
  const uint8_t mask[4] = {9, 8, 7, 6};
  for (uint64_t n : {0ull, 1ull, 125ull, 126ull, 127ull, 65535ull, 65536ull, 1ull << 32,
                     (1ull << 63) - 1}) {
    for (bool masked : {false, true}) {
      for (bool rsv1 : {false, true}) {
        uint8_t out[kMaxHeaderSize + 2];
        out[kMaxHeaderSize] = 0xAB;  // must not be touched
        size_t len = write_header(out, Opcode::Binary, n, !rsv1, rsv1, masked ? mask : nullptr);
        EXPECT_EQ(len, header_size_for(n, masked));
        EXPECT_EQ(len, (n < 126 ? 2u : n < 65536 ? 4u : 10u) + (masked ? 4u : 0u));
        EXPECT_EQ(out[kMaxHeaderSize], 0xAB);
        FrameHeader h;
        ASSERT_EQ(parse_header(out, len, h), HeaderStatus::Ok) << n;
        EXPECT_EQ(h.header_size, len);
        EXPECT_EQ(h.payload_size, n);
        EXPECT_EQ(h.fin, !rsv1);
        EXPECT_EQ(h.rsv1, rsv1);
        EXPECT_FALSE(h.rsv2 || h.rsv3);
        EXPECT_EQ(h.opcode, 0x2);
        EXPECT_EQ(h.masked, masked);
        if (masked) {
          EXPECT_EQ(0, std::memcmp(h.mask, mask, 4));
        }
      }
    }
  }
}

TEST(FrameHeader, WritesTheRfcExamplesByteForByte) {
  uint8_t out[kMaxHeaderSize];
  size_t n = write_header(out, Opcode::Text, 5);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), n), bytes({0x81, 0x05}));
  n = write_header(out, Opcode::Binary, 256);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), n), bytes({0x82, 0x7E, 0x01, 0x00}));
  n = write_header(out, Opcode::Binary, 65536);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), n),
            bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}));
  n = write_header(out, Opcode::Text, 3, /*fin=*/false);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), n), bytes({0x01, 0x03}));
  n = write_header(out, Opcode::Continuation, 2);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), n), bytes({0x80, 0x02}));
  n = write_header(out, Opcode::Text, 7, true, /*rsv1=*/true);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), n), bytes({0xC1, 0x07}));
  n = write_header(out, Opcode::Pong, 5, true, false, test::kMask);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), n),
            bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d}));
  n = write_header(out, Opcode::Close, 2);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), n), bytes({0x88, 0x02}));
  n = write_header(out, Opcode::Ping, 0);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), n), bytes({0x89, 0x00}));
}

TEST(Masking, Rfc6455Example) {
  std::string p = "Hello";
  apply_mask(reinterpret_cast<uint8_t*>(p.data()), p.size(), test::kMask);
  EXPECT_EQ(p, bytes({0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  apply_mask(reinterpret_cast<uint8_t*>(p.data()), p.size(), test::kMask);
  EXPECT_EQ(p, "Hello");
}

TEST(Masking, MatchesTheDefinitionForEveryLengthAndOffset) {
  std::mt19937 rng(42);
  const uint8_t mask[4] = {0x01, 0x80, 0xfe, 0x5a};
  for (size_t n = 0; n < 70; ++n) {
    std::vector<uint8_t> data(n);
    for (auto& b : data) b = static_cast<uint8_t>(rng());
    for (size_t offset = 0; offset < 8; ++offset) {
      std::vector<uint8_t> got = data;
      apply_mask(got.data(), n, mask, offset);
      for (size_t i = 0; i < n; ++i) {
        ASSERT_EQ(got[i], data[i] ^ mask[(offset + i) % 4]) << "n=" << n << " off=" << offset;
      }
    }
  }
}

TEST(Masking, InPiecesEqualsWhole) {
  std::mt19937 rng(7);
  std::vector<uint8_t> data(1000);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  std::vector<uint8_t> whole = data;
  apply_mask(whole.data(), whole.size(), test::kMask);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<uint8_t> pieces = data;
    size_t pos = 0;
    while (pos < pieces.size()) {
      size_t len = std::min<size_t>(rng() % 37, pieces.size() - pos);
      apply_mask(pieces.data() + pos, len, test::kMask, pos);
      pos += len;
    }
    ASSERT_EQ(pieces, whole);
  }
}

}  // namespace
}  // namespace wstrace::ws
