// permessage-deflate (RFC 7692): negotiation of the four parameters, the
// Deflater (checked with a zlib inflater configured as a client would be from
// the negotiated response) and the Inflater (the §7.2.3 examples, limits).
#include "ws/deflate.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <random>
#include <string>

#include "ws_test_util.h"

namespace wstrace::ws {
namespace {

using test::bytes;

std::optional<DeflateParams> negotiate(std::string_view offer, std::string* response = nullptr,
                                       DeflatePolicy policy = {}) {
  std::string r = "untouched";
  auto p = negotiate_deflate(offer, policy, &r);
  if (response != nullptr) *response = r;
  return p;
}

// ---------------------------------------------------------------------------
// Negotiation.

TEST(DeflateNegotiation, PlainOffer) {
  std::string resp;
  auto p = negotiate("permessage-deflate", &resp);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->client_no_context_takeover);
  EXPECT_EQ(p->server_window_bits, 15);
  EXPECT_EQ(p->client_window_bits, 15);
  // We never keep compressor state: server_no_context_takeover always.
  EXPECT_EQ(resp, "permessage-deflate; server_no_context_takeover");
}

TEST(DeflateNegotiation, NoContextTakeoverParameters) {
  std::string resp;
  auto p = negotiate("permessage-deflate; client_no_context_takeover", &resp);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->client_no_context_takeover);
  EXPECT_EQ(resp, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  p = negotiate("permessage-deflate; server_no_context_takeover", &resp);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->client_no_context_takeover);
  EXPECT_EQ(resp, "permessage-deflate; server_no_context_takeover");
  p = negotiate("permessage-deflate;server_no_context_takeover;client_no_context_takeover", &resp);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->client_no_context_takeover);
}

TEST(DeflateNegotiation, ServerMaxWindowBits) {
  for (int bits = 9; bits <= 15; ++bits) {
    std::string resp;
    auto p = negotiate("permessage-deflate; server_max_window_bits=" + std::to_string(bits), &resp);
    ASSERT_TRUE(p) << bits;
    EXPECT_EQ(p->server_window_bits, bits);
    // §7.1.2.1: the response must carry a value no larger than offered.
    EXPECT_EQ(resp, "permessage-deflate; server_no_context_takeover; server_max_window_bits=" +
                        std::to_string(bits));
  }
}

TEST(DeflateNegotiation, ServerMaxWindowBitsEightIsDeclined) {
  // zlib cannot produce a raw deflate stream with a 256-byte window.
  std::string resp;
  EXPECT_FALSE(negotiate("permessage-deflate; server_max_window_bits=8", &resp));
  // ... but a later acceptable offer is still taken.
  auto p = negotiate("permessage-deflate; server_max_window_bits=8, permessage-deflate", &resp);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->server_window_bits, 15);
  EXPECT_EQ(resp, "permessage-deflate; server_no_context_takeover");
}

TEST(DeflateNegotiation, ClientMaxWindowBits) {
  std::string resp;
  // No value: we choose, within the policy's cap.
  auto p = negotiate("permessage-deflate; client_max_window_bits", &resp);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->client_window_bits, 10);
  EXPECT_EQ(resp, "permessage-deflate; server_no_context_takeover; client_max_window_bits=10");
  // A value is the client's limit: we answer with no more than it.
  p = negotiate("permessage-deflate; client_max_window_bits=9", &resp);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->client_window_bits, 9);
  EXPECT_EQ(resp, "permessage-deflate; server_no_context_takeover; client_max_window_bits=9");
  p = negotiate("permessage-deflate; client_max_window_bits=12", &resp);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->client_window_bits, 10);
  EXPECT_EQ(resp, "permessage-deflate; server_no_context_takeover; client_max_window_bits=10");
  // A client window of 8 is decoded with a 9-bit inflater.
  p = negotiate("permessage-deflate; client_max_window_bits=8", &resp);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->client_window_bits, 9);
  EXPECT_EQ(resp, "permessage-deflate; server_no_context_takeover; client_max_window_bits=8");
}

TEST(DeflateNegotiation, ClientWindowPolicy) {
  std::string resp;
  DeflatePolicy wide;
  wide.client_window_cap = 15;
  auto p = negotiate("permessage-deflate; client_max_window_bits", &resp, wide);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->client_window_bits, 15);
  EXPECT_EQ(resp, "permessage-deflate; server_no_context_takeover");
  p = negotiate("permessage-deflate; client_max_window_bits=12", &resp, wide);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->client_window_bits, 12);
  EXPECT_EQ(resp, "permessage-deflate; server_no_context_takeover; client_max_window_bits=12");
  DeflatePolicy tiny;
  tiny.client_window_cap = 3;  // clamped to 9
  p = negotiate("permessage-deflate; client_max_window_bits", &resp, tiny);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->client_window_bits, 9);
  DeflatePolicy huge;
  huge.client_window_cap = 40;  // clamped to 15
  p = negotiate("permessage-deflate; client_max_window_bits", &resp, huge);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->client_window_bits, 15);
}

TEST(DeflateNegotiation, WithoutClientMaxWindowBitsWeMustNotSendIt) {
  std::string resp;
  DeflatePolicy small;
  small.client_window_cap = 9;
  auto p = negotiate("permessage-deflate; client_no_context_takeover", &resp, small);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->client_window_bits, 15);
  EXPECT_EQ(resp.find("client_max_window_bits"), std::string::npos);
}

TEST(DeflateNegotiation, AllFourParameters) {
  std::string resp;
  auto p = negotiate(
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
      "server_max_window_bits=11; client_max_window_bits=13",
      &resp);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->client_no_context_takeover);
  EXPECT_EQ(p->server_window_bits, 11);
  EXPECT_EQ(p->client_window_bits, 10);
  EXPECT_EQ(resp,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=11; client_max_window_bits=10");
}

TEST(DeflateNegotiation, InvalidOffersAreDeclined) {
  for (const char* offer : {
           // duplicates (§7: a parameter appears at most once)
           "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
           "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
           "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
           "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
           // values where none is allowed
           "permessage-deflate; server_no_context_takeover=1",
           "permessage-deflate; client_no_context_takeover=true",
           // bad window sizes
           "permessage-deflate; server_max_window_bits",
           "permessage-deflate; server_max_window_bits=7",
           "permessage-deflate; server_max_window_bits=16",
           "permessage-deflate; server_max_window_bits=0",
           "permessage-deflate; server_max_window_bits=010",
           "permessage-deflate; server_max_window_bits=1O",
           "permessage-deflate; server_max_window_bits=abc",
           "permessage-deflate; server_max_window_bits=-9",
           "permessage-deflate; client_max_window_bits=7",
           "permessage-deflate; client_max_window_bits=16",
           "permessage-deflate; client_max_window_bits=15.0",
           // unknown parameters decline the offer (§7.1)
           "permessage-deflate; foo",
           "permessage-deflate; foo=bar",
           "permessage-deflate; Server_No_Context_Takeover",
           // other extensions only
           "x-webkit-deflate-frame",
           "deflate-frame; no_context_takeover",
           "",
       }) {
    std::string resp;
    EXPECT_FALSE(negotiate(offer, &resp)) << offer;
  }
}

TEST(DeflateNegotiation, SyntaxErrorsDeclineEverything) {
  for (const char* offer : {
           "permessage-deflate;",
           "permessage-deflate; ;",
           "permessage-deflate; =10",
           "permessage-deflate; server_max_window_bits=",
           "permessage-deflate; server_max_window_bits=\"10",
           "permessage-deflate; server_max_window_bits=\"\"",
           "permessage-deflate; server_max_window_bits=\"1 0\"",
           "permessage-deflate client_no_context_takeover",
           "permessage-deflate, ;",
           "\"permessage-deflate\"",
       }) {
    std::string resp;
    EXPECT_FALSE(negotiate(offer, &resp)) << offer;
  }
}

TEST(DeflateNegotiation, QuotedValues) {
  std::string resp;
  auto p = negotiate("permessage-deflate; server_max_window_bits=\"10\"", &resp);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->server_window_bits, 10);
  EXPECT_EQ(resp, "permessage-deflate; server_no_context_takeover; server_max_window_bits=10");
  p = negotiate("permessage-deflate; client_max_window_bits=\"9\"", &resp);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->client_window_bits, 9);
  // A quoted-pair inside the quotes.
  p = negotiate("permessage-deflate; server_max_window_bits=\"1\\2\"", &resp);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->server_window_bits, 12);
}

TEST(DeflateNegotiation, SeveralOffersFirstAcceptableWins) {
  std::string resp;
  auto p = negotiate(
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=12, "
      "permessage-deflate",
      &resp);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->client_no_context_takeover);
  EXPECT_EQ(p->server_window_bits, 12);
  p = negotiate("permessage-deflate; unknown_thing, permessage-deflate; client_no_context_takeover",
                &resp);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->client_no_context_takeover);
  EXPECT_EQ(resp, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  p = negotiate("x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=9", &resp);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->server_window_bits, 9);
}

TEST(DeflateNegotiation, WhitespaceAndEmptyElements) {
  std::string resp;
  auto p = negotiate(
      " ,\tpermessage-deflate ;  client_max_window_bits = 12 ;\tclient_no_context_takeover , ,",
      &resp);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->client_no_context_takeover);
  EXPECT_EQ(p->client_window_bits, 10);
}

TEST(DeflateNegotiation, OurResponseIsItselfAnAcceptableOffer) {
  for (const char* offer :
       {"permessage-deflate", "permessage-deflate; client_max_window_bits",
        "permessage-deflate; client_no_context_takeover; server_max_window_bits=9",
        "permessage-deflate; client_max_window_bits=11; server_max_window_bits=13"}) {
    std::string resp, again;
    auto p = negotiate(offer, &resp);
    ASSERT_TRUE(p) << offer;
    auto q = negotiate(resp, &again);
    ASSERT_TRUE(q) << resp;
    EXPECT_EQ(q->server_window_bits, p->server_window_bits);
    EXPECT_EQ(q->client_no_context_takeover, p->client_no_context_takeover);
  }
}

// ---------------------------------------------------------------------------
// Deflater → a zlib inflater configured from the negotiated parameters.

// Inflates one message as a client with `bits` would: fresh window for each
// message (we always send server_no_context_takeover). The output is taken
// one byte at a time, so zlib must find every back-reference in its window:
// a distance beyond 2^bits fails instead of being served from our buffer.
std::optional<std::string> client_inflate(const uint8_t* data, size_t n, int bits) {
  z_stream zs{};
  if (inflateInit2(&zs, -bits) != Z_OK) return std::nullopt;
  std::string in(reinterpret_cast<const char*>(data), n);
  in += bytes({0x00, 0x00, 0xff, 0xff});
  std::string out;
  char buf[1];
  zs.next_in = reinterpret_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  int rc;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      inflateEnd(&zs);
      return std::nullopt;
    }
    if (zs.avail_out == 0) out.push_back(buf[0]);
    if (rc == Z_STREAM_END) break;
  } while (zs.avail_in > 0 || zs.avail_out == 0);
  inflateEnd(&zs);
  return out;
}

std::vector<std::string> sample_messages() {
  std::mt19937 rng(5);
  std::vector<std::string> out;
  out.push_back("");
  out.push_back("Hello");
  out.push_back(R"({"type":"Message","channel":"news","content":"the same words the same words"})");
  // Repetition at long distances: only decodable with the right window.
  std::string far;
  std::string block;
  for (int i = 0; i < 700; ++i) block.push_back(static_cast<char>('a' + rng() % 26));
  for (int i = 0; i < 60; ++i) far += block + std::to_string(i);
  out.push_back(far);
  std::string noise(20000, '\0');
  for (auto& c : noise) c = static_cast<char>(rng());
  out.push_back(noise);  // incompressible
  out.push_back(std::string(300000, 'x'));
  return out;
}

TEST(Deflater, RoundTripThroughTheNegotiatedClientInflater) {
  for (const char* offer : {"permessage-deflate", "permessage-deflate; server_max_window_bits=9",
                            "permessage-deflate; server_max_window_bits=10",
                            "permessage-deflate; server_max_window_bits=12",
                            "permessage-deflate; server_max_window_bits=15"}) {
    std::string resp;
    auto p = negotiate(offer, &resp);
    ASSERT_TRUE(p) << offer;
    Deflater d(p->server_window_bits);
    for (const auto& m : sample_messages()) {
      Buffer out;
      out.append("prefix");  // compress() appends
      ASSERT_TRUE(d.compress(reinterpret_cast<const uint8_t*>(m.data()), m.size(), out));
      ASSERT_EQ(out.view().substr(0, 6), "prefix");
      std::string_view z = out.view().substr(6);
      ASSERT_FALSE(z.empty());
      // §7.2.1: the trailing 00 00 ff ff is removed.
      if (z.size() >= 4) {
        EXPECT_NE(z.substr(z.size() - 4), bytes({0, 0, 0xff, 0xff}));
      }
      auto back = client_inflate(reinterpret_cast<const uint8_t*>(z.data()), z.size(),
                                 p->server_window_bits);
      ASSERT_TRUE(back) << offer << " size " << m.size();
      EXPECT_EQ(*back, m) << offer;
    }
  }
}

TEST(Deflater, Rfc7692Examples) {
  Deflater d;
  Buffer out;
  ASSERT_TRUE(d.compress(reinterpret_cast<const uint8_t*>("Hello"), 5, out));
  EXPECT_EQ(out.view(), bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}));
  // §7.2.3.6: an empty message is a single 0x00 byte.
  out.clear();
  ASSERT_TRUE(d.compress(nullptr, 0, out));
  EXPECT_EQ(out.view(), bytes({0x00}));
}

TEST(Deflater, EveryMessageStandsAlone) {
  // No context takeover: the same message compresses to the same bytes every
  // time, and each decodes with a fresh inflater.
  Deflater d(15);
  std::string m = "repeat repeat repeat repeat repeat repeat";
  Buffer first;
  ASSERT_TRUE(d.compress(reinterpret_cast<const uint8_t*>(m.data()), m.size(), first));
  for (int i = 0; i < 3; ++i) {
    Buffer again;
    ASSERT_TRUE(d.compress(reinterpret_cast<const uint8_t*>(m.data()), m.size(), again));
    EXPECT_EQ(again.view(), first.view());
  }
}

// ---------------------------------------------------------------------------
// Inflater.

Inflater::Result inflate_str(Inflater& inf, const std::string& in, std::string& out,
                             size_t max = 1 << 20, bool reset = true) {
  Buffer b;
  Inflater::Result r =
      inf.inflate_message(reinterpret_cast<const uint8_t*>(in.data()), in.size(), b, max, reset);
  out.assign(b.view());
  return r;
}

TEST(Inflater, Rfc7692Examples) {
  Inflater inf;
  std::string out;
  for (const std::string& z :
       {bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}),
        bytes({0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}),
        bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}),
        bytes({0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00})}) {
    ASSERT_EQ(inflate_str(inf, z, out), Inflater::Result::Ok);
    EXPECT_EQ(out, "Hello");
  }
  ASSERT_EQ(inflate_str(inf, bytes({0x00}), out), Inflater::Result::Ok);
  EXPECT_EQ(out, "");
}

TEST(Inflater, ContextTakeoverKeepsTheWindow) {
  Inflater inf;
  std::string out;
  const std::string first = bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
  const std::string second = bytes({0xf2, 0x00, 0x11, 0x00, 0x00});
  ASSERT_EQ(inflate_str(inf, first, out, 1 << 20, false), Inflater::Result::Ok);
  ASSERT_EQ(inflate_str(inf, second, out, 1 << 20, false), Inflater::Result::Ok);
  EXPECT_EQ(out, "Hello");
  // Reset after the first: the second refers to nothing.
  Inflater fresh;
  ASSERT_EQ(inflate_str(fresh, first, out, 1 << 20, true), Inflater::Result::Ok);
  EXPECT_EQ(inflate_str(fresh, second, out, 1 << 20, true), Inflater::Result::Error);
}

TEST(Inflater, AppendsToTheOutput) {
  Inflater inf;
  Buffer b;
  b.append("x");
  std::string z = bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
  ASSERT_EQ(inf.inflate_message(reinterpret_cast<const uint8_t*>(z.data()), z.size(), b, 5, true),
            Inflater::Result::Ok);
  EXPECT_EQ(b.view(), "xHello");  // the limit counts only this message
}

TEST(Inflater, SizeLimit) {
  Deflater d;
  std::string m(100000, 'q');
  Buffer z;
  ASSERT_TRUE(d.compress(reinterpret_cast<const uint8_t*>(m.data()), m.size(), z));
  std::string zs(z.view());
  Inflater inf;
  std::string out;
  EXPECT_EQ(inflate_str(inf, zs, out, m.size()), Inflater::Result::Ok);
  EXPECT_EQ(out, m);
  EXPECT_EQ(inflate_str(inf, zs, out, m.size() - 1), Inflater::Result::TooBig);
  // The output stops near the limit: it never holds the whole bomb.
  EXPECT_LE(out.size(), m.size());
  // After TooBig the inflater starts clean.
  EXPECT_EQ(inflate_str(inf, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), out),
            Inflater::Result::Ok);
  EXPECT_EQ(out, "Hello");
}

TEST(Inflater, DeflateBomb) {
  std::string zeros(16 << 20, '\0');
  Deflater d;
  Buffer z;
  ASSERT_TRUE(d.compress(reinterpret_cast<const uint8_t*>(zeros.data()), zeros.size(), z));
  ASSERT_LT(z.size(), 200000u);
  Inflater inf;
  Buffer out;
  EXPECT_EQ(inf.inflate_message(z.data(), z.size(), out, 1 << 20, false), Inflater::Result::TooBig);
  EXPECT_LE(out.size(), (1u << 20) + 1);
}

TEST(Inflater, CorruptDataIsAnErrorAndTheNextMessageWorks) {
  Inflater inf;
  std::string out;
  EXPECT_EQ(inflate_str(inf, bytes({0xff, 0xff, 0xff}), out, 1 << 20, false),
            Inflater::Result::Error);
  EXPECT_EQ(inflate_str(inf, bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xff}), out),
            Inflater::Result::Error);  // a reserved block type after the final block
  EXPECT_EQ(inflate_str(inf, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), out, 1 << 20,
                        false),
            Inflater::Result::Ok);
  EXPECT_EQ(out, "Hello");
}

TEST(Inflater, FinalBlockThenMoreBlocks) {
  // BFINAL, then a stored "!" block and the header bits of the empty stored
  // block the appended 00 00 ff ff completes: a second deflate stream.
  Inflater inf;
  std::string out;
  std::string z = bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x01, 0x00, 0xfe, 0xff,
                         0x21, 0x00});
  ASSERT_EQ(inflate_str(inf, z, out, 1 << 20, false), Inflater::Result::Ok);
  EXPECT_EQ(out, "Hello!");
  ASSERT_EQ(inflate_str(inf, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), out, 1 << 20,
                        false),
            Inflater::Result::Ok);
  EXPECT_EQ(out, "Hello");
}

TEST(Deflater, StrictClientInflaterCatchesAWindowTooSmall) {
  // The check the round trip relies on: a stream made with a 32 KiB window
  // and back-references 20000 bytes away does not decode with a 512-byte one.
  std::mt19937 rng(1);
  std::string block(20000, '\0');
  for (auto& c : block) c = static_cast<char>('a' + rng() % 26);
  std::string m = block + block;
  Deflater d(15);
  Buffer z;
  ASSERT_TRUE(d.compress(reinterpret_cast<const uint8_t*>(m.data()), m.size(), z));
  EXPECT_FALSE(client_inflate(z.data(), z.size(), 9));
  auto ok = client_inflate(z.data(), z.size(), 15);
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, m);
}

TEST(Inflater, RoundTripManyMessagesOneInflater) {
  Deflater d;
  Inflater inf;
  for (const auto& m : sample_messages()) {
    Buffer z;
    ASSERT_TRUE(d.compress(reinterpret_cast<const uint8_t*>(m.data()), m.size(), z));
    Buffer out;
    // Context kept: our messages never refer back, so keeping it is harmless.
    ASSERT_EQ(inf.inflate_message(z.data(), z.size(), out, 1 << 20, false), Inflater::Result::Ok);
    EXPECT_EQ(out.view(), m);
  }
}

}  // namespace
}  // namespace wstrace::ws
