// The I/O-free RFC 6455 receive state machine: the §5.7 examples, control
// frames inside fragmented messages, every error mapped to its close code,
// UTF-8 across fragments, size limits on the wire and after inflating,
// permessage-deflate (RFC 7692 §7.2.3 examples), and the property that a
// byte stream split anywhere gives the same result as the stream whole.
#include "ws/receiver.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "ws_test_util.h"

namespace wstrace::ws {
namespace {

using namespace test;  // NOLINT: test helpers

std::vector<Event> run(std::string_view stream, Recorder& h) {
  Receiver r;
  feed_whole(r, h, stream);
  return h.events;
}

std::vector<Event> run(std::string_view stream, uint64_t max = 1 << 20) {
  Recorder h;
  h.max = max;
  return run(stream, h);
}

std::vector<Event> run_deflate(std::string_view stream, bool reset = false,
                               uint64_t max = 1 << 20) {
  Recorder h;
  h.deflate = true;
  h.reset_inflater = reset;
  h.max = max;
  return run(stream, h);
}

using Events = std::vector<Event>;

// Raw deflate with zlib directly, as a client would (sync flush, tail removed).
std::string client_deflate(std::string_view in, int bits = 15, z_stream* keep = nullptr) {
  z_stream local{};
  z_stream* zs = keep;
  if (zs == nullptr) {
    zs = &local;
    EXPECT_EQ(deflateInit2(zs, 9, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
  }
  std::string out(deflateBound(zs, in.size()) + 64, '\0');
  zs->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs->avail_in = static_cast<uInt>(in.size());
  zs->next_out = reinterpret_cast<Bytef*>(out.data());
  zs->avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(zs, Z_SYNC_FLUSH), Z_OK);
  EXPECT_EQ(zs->avail_in, 0u);
  out.resize(out.size() - zs->avail_out);
  EXPECT_EQ(out.substr(out.size() - 4), bytes({0, 0, 0xff, 0xff}));
  out.resize(out.size() - 4);
  if (keep == nullptr) deflateEnd(zs);
  return out;
}

// ---------------------------------------------------------------------------
// RFC 6455 §5.7 examples (client frames, so masked).

TEST(Receiver, Rfc6455MaskedHello) {
  EXPECT_EQ(run(bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58})),
            Events{text_msg("Hello")});
}

TEST(Receiver, Rfc6455FragmentedHello) {
  std::string s = client_frame(0x01, "Hel") + client_frame(0x80, "lo");
  EXPECT_EQ(run(s), Events{text_msg("Hello")});
}

TEST(Receiver, PingAndPongWithPayload) {
  std::string s = ping("Hello") +
                  bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
  EXPECT_EQ(run(s), (Events{ping_ev("Hello"), pong_ev("Hello")}));
  EXPECT_EQ(run(ping("") + pong("")), (Events{ping_ev(""), pong_ev("")}));
}

TEST(Receiver, BinaryWith16And64BitLengths) {
  std::string b256(256, '\0');
  for (size_t i = 0; i < b256.size(); ++i) b256[i] = static_cast<char>(i);
  std::string b64k(65536, '\0');
  for (size_t i = 0; i < b64k.size(); ++i) b64k[i] = static_cast<char>(i * 7 + 3);
  std::string f256 = binary(b256);
  ASSERT_EQ(f256.substr(0, 4), bytes({0x82, 0xFE, 0x01, 0x00}));
  std::string f64k = binary(b64k);
  ASSERT_EQ(f64k.substr(0, 10), bytes({0x82, 0xFF, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}));
  EXPECT_EQ(run(f256 + f64k), (Events{msg(Opcode::Binary, b256), msg(Opcode::Binary, b64k)}));
}

TEST(Receiver, EmptyMessagesAndEmptyFragments) {
  std::string s = text("") + binary("") + client_frame(0x01, "") + client_frame(0x00, "") +
                  client_frame(0x80, "");
  EXPECT_EQ(run(s), (Events{text_msg(""), msg(Opcode::Binary, ""), text_msg("")}));
}

TEST(Receiver, ControlFramesInsideAFragmentedMessage) {
  std::string s = client_frame(0x01, "Hel") + ping("p1") + client_frame(0x00, "l") +
                  pong("q") + ping("") + client_frame(0x80, "o") + text("next");
  EXPECT_EQ(run(s), (Events{ping_ev("p1"), pong_ev("q"), ping_ev(""), text_msg("Hello"),
                            text_msg("next")}));
}

TEST(Receiver, FragmentedBinaryInManyPieces) {
  std::string s = client_frame(0x02, "a");
  for (int i = 0; i < 100; ++i) s += client_frame(0x00, std::string(i, 'x'));
  s += client_frame(0x80, "z");
  std::string want = "a";
  for (int i = 0; i < 100; ++i) want += std::string(i, 'x');
  want += "z";
  EXPECT_EQ(run(s), Events{msg(Opcode::Binary, want)});
}

TEST(Receiver, MasksAreIndependentPerFrame) {
  const uint8_t m1[4] = {1, 2, 3, 4};
  const uint8_t m2[4] = {0xff, 0x00, 0xaa, 0x55};
  std::string s = client_frame(0x01, "abcde", true, m1) + client_frame(0x80, "fgh", true, m2);
  EXPECT_EQ(run(s), Events{text_msg("abcdefgh")});
}

// ---------------------------------------------------------------------------
// Close frames.

TEST(Receiver, CloseWithoutPayloadReportsNoStatus) {
  Recorder h;
  Receiver r;
  feed_whole(r, h, client_frame(0x88, "") + text("after"));
  EXPECT_EQ(h.events, Events{close_ev(close_code::kNoStatus)});
  EXPECT_TRUE(r.done());
}

TEST(Receiver, CloseWithCodeAndReason) {
  EXPECT_EQ(run(close_frame(1000, "bye")), Events{close_ev(1000, "bye")});
  EXPECT_EQ(run(close_frame(4999, "\xE2\x82\xAC")), Events{close_ev(4999, "\xE2\x82\xAC")});
  std::string longest(123, 'r');  // 2 + 123 = 125 bytes, the control maximum
  EXPECT_EQ(run(close_frame(1001, longest)), Events{close_ev(1001, longest)});
  EXPECT_EQ(run(close_frame(1001, longest + "r")), Events{fail_ev(Error::ControlTooLong)});
}

TEST(Receiver, CloseCodeValidation) {
  for (uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                        3000, 3999, 4000, 4408, 4429, 4999}) {
    EXPECT_EQ(run(close_frame(code)), Events{close_ev(code)}) << code;
    EXPECT_TRUE(is_valid_received_close_code(code)) << code;
  }
  for (uint16_t code : {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    EXPECT_EQ(run(close_frame(code)), Events{fail_ev(Error::InvalidCloseCode)}) << code;
    EXPECT_FALSE(is_valid_received_close_code(code)) << code;
  }
  EXPECT_EQ(close_code_for(Error::InvalidCloseCode), close_code::kProtocolError);
}

TEST(Receiver, CloseWithOneBytePayloadIsAProtocolError) {
  EXPECT_EQ(run(client_frame(0x88, "\x03")), Events{fail_ev(Error::BadClosePayload)});
  EXPECT_EQ(close_code_for(Error::BadClosePayload), 1002);
}

TEST(Receiver, CloseReasonMustBeUtf8) {
  EXPECT_EQ(run(close_frame(1000, "ok\xFF")), Events{fail_ev(Error::InvalidUtf8)});
  EXPECT_EQ(run(close_frame(1000, "\xED\xA0\x80")), Events{fail_ev(Error::InvalidUtf8)});
  EXPECT_EQ(run(close_frame(1000, "cut \xE2\x82")), Events{fail_ev(Error::InvalidUtf8)});
  EXPECT_EQ(close_code_for(Error::InvalidUtf8), 1007);
}

TEST(Receiver, CloseInsideAFragmentedMessageEndsIt) {
  Recorder h;
  Receiver r;
  feed_whole(r, h, client_frame(0x01, "Hel") + close_frame(1000) + client_frame(0x80, "lo"));
  EXPECT_EQ(h.events, Events{close_ev(1000)});
  EXPECT_TRUE(r.done());
}

// ---------------------------------------------------------------------------
// Protocol errors, each mapped to its close code.

struct ErrorCase {
  const char* name;
  std::string stream;
  Events want;
  uint16_t close_code;
};

std::vector<ErrorCase> error_cases() {
  const std::string hel = client_frame(0x01, "Hel");
  return {
      {"unmasked text", bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}),
       {fail_ev(Error::UnmaskedFrame)}, 1002},
      {"unmasked ping", client_frame(0x89, "x", false), {fail_ev(Error::UnmaskedFrame)}, 1002},
      {"unmasked close", client_frame(0x88, "", false), {fail_ev(Error::UnmaskedFrame)}, 1002},
      {"rsv1 without deflate", client_frame(0xC1, "x"), {fail_ev(Error::ReservedBits)}, 1002},
      {"rsv2", client_frame(0xA1, "x"), {fail_ev(Error::ReservedBits)}, 1002},
      {"rsv3", client_frame(0x91, "x"), {fail_ev(Error::ReservedBits)}, 1002},
      {"rsv2 on ping", client_frame(0xA9, ""), {fail_ev(Error::ReservedBits)}, 1002},
      {"opcode 3", client_frame(0x83, ""), {fail_ev(Error::ReservedOpcode)}, 1002},
      {"opcode 7", client_frame(0x87, "x"), {fail_ev(Error::ReservedOpcode)}, 1002},
      {"opcode 0xB", client_frame(0x8B, ""), {fail_ev(Error::ReservedOpcode)}, 1002},
      {"opcode 0xF", client_frame(0x8F, "x"), {fail_ev(Error::ReservedOpcode)}, 1002},
      {"reserved opcode inside a message", hel + client_frame(0x84, ""),
       {fail_ev(Error::ReservedOpcode)}, 1002},
      {"fragmented ping", client_frame(0x09, "x"), {fail_ev(Error::FragmentedControl)}, 1002},
      {"fragmented close", client_frame(0x08, ""), {fail_ev(Error::FragmentedControl)}, 1002},
      {"ping of 126 bytes", ping(std::string(126, 'p')), {fail_ev(Error::ControlTooLong)}, 1002},
      {"pong of 65536 bytes", pong(std::string(65536, 'p')), {fail_ev(Error::ControlTooLong)},
       1002},
      {"64-bit length with the top bit", bytes({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}),
       {fail_ev(Error::BadLength)}, 1002},
      {"continuation first", client_frame(0x80, "lo"), {fail_ev(Error::UnexpectedContinuation)},
       1002},
      {"continuation after a complete message", text("a") + client_frame(0x80, "b"),
       {text_msg("a"), fail_ev(Error::UnexpectedContinuation)}, 1002},
      {"text inside a fragmented message", hel + text("x"),
       {fail_ev(Error::ExpectedContinuation)}, 1002},
      {"binary start inside a fragmented message", hel + client_frame(0x02, "x"),
       {fail_ev(Error::ExpectedContinuation)}, 1002},
      {"one-byte close", client_frame(0x88, "\x03"), {fail_ev(Error::BadClosePayload)}, 1002},
      {"close code 1005", close_frame(1005), {fail_ev(Error::InvalidCloseCode)}, 1002},
      {"invalid utf-8 text", text("Hello\xC0\x80"), {fail_ev(Error::InvalidUtf8)}, 1007},
      {"truncated utf-8 text", text("\xE2\x82"), {fail_ev(Error::InvalidUtf8)}, 1007},
      {"surrogate in text", text("\xED\xA0\x80"), {fail_ev(Error::InvalidUtf8)}, 1007},
      {"invalid utf-8 in a fragment", hel + client_frame(0x00, "\xFF") + client_frame(0x80, "o"),
       {fail_ev(Error::InvalidUtf8)}, 1007},
      {"message ends inside a character", hel + client_frame(0x80, "\xF0\x9F\x98"),
       {fail_ev(Error::InvalidUtf8)}, 1007},
      {"invalid close reason", close_frame(1000, "\xC1"), {fail_ev(Error::InvalidUtf8)}, 1007},
  };
}

TEST(Receiver, EveryErrorWithItsCloseCode) {
  for (const auto& c : error_cases()) {
    Recorder h;
    Receiver r;
    feed_whole(r, h, c.stream);
    EXPECT_EQ(h.events, c.want) << c.name;
    EXPECT_TRUE(r.done()) << c.name;
    EXPECT_FALSE(r.in_fragmented_message()) << c.name;
    ASSERT_FALSE(h.events.empty());
    EXPECT_EQ(close_code_for(h.events.back().error), c.close_code) << c.name;
  }
}

TEST(Receiver, NothingIsAcceptedAfterAnError) {
  Recorder h;
  Receiver r;
  std::string bad = client_frame(0xA1, "x");
  feed_whole(r, h, bad);
  ASSERT_TRUE(r.done());
  std::string more = text("Hello") + ping("x");
  uint64_t pending = 99;
  EXPECT_EQ(r.feed(reinterpret_cast<uint8_t*>(more.data()), more.size(), h, pending), 0u);
  EXPECT_EQ(pending, 0u);
  EXPECT_EQ(h.events, Events{fail_ev(Error::ReservedBits)});
}

TEST(Receiver, RefusesAFrameAsSoonAsItsHeaderArrives) {
  // The payload of a refused frame is never waited for (nor buffered).
  struct HeaderOnly {
    std::string header;
    Error want;
  };
  std::vector<HeaderOnly> cases = {
      {bytes({0x81, 0xFF, 0, 0, 0, 0, 0, 0x20, 0, 1, 1, 2, 3, 4}), Error::MessageTooBig},  // 2 MiB
      {bytes({0x81, 0x7F, 0, 0, 0, 0, 0, 0, 0, 5}), Error::UnmaskedFrame},
      {bytes({0xE2, 0xFE, 0x10, 0x00, 1, 2, 3, 4}), Error::ReservedBits},
      {bytes({0x89, 0xFE, 0x00, 0x7E, 1, 2, 3, 4}), Error::ControlTooLong},
  };
  for (const auto& c : cases) {
    Recorder h;
    Receiver r;
    std::string s = c.header;
    uint64_t pending = 0;
    size_t used = r.feed(reinterpret_cast<uint8_t*>(s.data()), s.size(), h, pending);
    EXPECT_EQ(used, 0u);
    EXPECT_EQ(h.events, Events{fail_ev(c.want)}) << describe(c.want);
  }
}

TEST(Receiver, PendingIsTheSizeOfTheIncompleteFrame) {
  Recorder h;
  Receiver r;
  std::string f = binary(std::string(256, 'b'));  // 4 + 4 + 256 bytes
  std::string s = text("a") + f;
  uint64_t pending = 0;
  // Before the header is complete: 0.
  size_t used = r.feed(reinterpret_cast<uint8_t*>(s.data()), 7 + 3, h, pending);
  EXPECT_EQ(used, 7u);
  EXPECT_EQ(pending, 0u);
  // Header complete, payload not.
  std::string tail = s.substr(7, 8 + 10);
  used = r.feed(reinterpret_cast<uint8_t*>(tail.data()), tail.size(), h, pending);
  EXPECT_EQ(used, 0u);
  EXPECT_EQ(pending, 264u);
  std::string rest = s.substr(7);
  used = r.feed(reinterpret_cast<uint8_t*>(rest.data()), rest.size(), h, pending);
  EXPECT_EQ(used, 264u);
  EXPECT_EQ(pending, 0u);
  EXPECT_EQ(h.events, (Events{text_msg("a"), msg(Opcode::Binary, std::string(256, 'b'))}));
}

TEST(Receiver, KeepReadingFalseStopsAfterTheCurrentFrame) {
  Recorder h;
  h.keep = false;
  Receiver r;
  std::string s = text("one") + text("two");
  uint64_t pending = 0;
  size_t used = r.feed(reinterpret_cast<uint8_t*>(s.data()), s.size(), h, pending);
  EXPECT_EQ(used, text("one").size());
  EXPECT_EQ(h.events, Events{text_msg("one")});
  EXPECT_FALSE(r.done());
}

// ---------------------------------------------------------------------------
// UTF-8 across fragments: fail at the first bad fragment, without waiting for
// the end of the message.

TEST(Receiver, Utf8CharacterSplitAcrossFragments) {
  // € = E2 82 AC, split in every possible way over three fragments.
  std::string euro = "\xE2\x82\xAC";
  EXPECT_EQ(run(client_frame(0x01, "\xE2") + client_frame(0x00, "\x82") +
                client_frame(0x80, "\xAC")),
            Events{text_msg(euro)});
  EXPECT_EQ(run(client_frame(0x01, "x\xE2\x82") + client_frame(0x80, "\xACy")),
            Events{text_msg("x" + euro + "y")});
  EXPECT_EQ(run(client_frame(0x01, "\xF0\x9F") + ping("") + client_frame(0x80, "\x98\x80")),
            (Events{ping_ev(""), text_msg("\xF0\x9F\x98\x80")}));
}

TEST(Receiver, InvalidUtf8FailsAtTheFirstBadFragment) {
  struct Case {
    std::string first, bad;
  };
  for (const Case& c : {Case{"Hello", "\xFF"}, Case{"Hello", "wor\xC0\xAFld"},
                        Case{"ok \xE0", "\x80\x80"},      // overlong across the boundary
                        Case{"ok \xED", "\xA0\x80"},      // surrogate across the boundary
                        Case{"ok \xF4", "\x90\x80\x80"},  // > U+10FFFF across the boundary
                        Case{"ok \xE2\x82", "A"}}) {      // missing continuation
    Recorder h;
    Receiver r;
    // The third fragment is never sent: the error must not wait for it.
    feed_whole(r, h, client_frame(0x01, c.first) + client_frame(0x00, c.bad));
    EXPECT_EQ(h.events, Events{fail_ev(Error::InvalidUtf8)}) << testing::PrintToString(c.bad);
    EXPECT_TRUE(r.done());
  }
  // An invalid first fragment fails at once.
  Recorder h;
  Receiver r;
  feed_whole(r, h, client_frame(0x01, "\xF8zz"));
  EXPECT_EQ(h.events, Events{fail_ev(Error::InvalidUtf8)});
}

// Autobahn 6.4.3/6.4.4: a frame whose bytes arrive in pieces fails at the
// piece with the bad byte, not when the whole frame is in.
TEST(Receiver, InvalidUtf8FailsBeforeItsFrameIsComplete) {
  std::string payload(1000, 'a');
  payload[10] = '\xFF';
  for (uint8_t b0 : {uint8_t{0x81}, uint8_t{0x01}}) {  // unfragmented, and a first fragment
    Recorder h;
    Receiver r;
    std::string f = client_frame(b0, payload);
    feed_chunks(r, h, f.substr(0, 8 + 11), {8, 12});  // header, then up to the bad byte
    EXPECT_EQ(h.events, Events{fail_ev(Error::InvalidUtf8)}) << int{b0};
    EXPECT_TRUE(r.done());
  }
  // In a continuation frame, with the character state carried from the
  // previous fragment: "\xE2" then "\x82" then "A" (not a continuation byte).
  Recorder h;
  Receiver r;
  std::string s = client_frame(0x01, "ok \xE2") + client_frame(0x80, "\x82" "A" + std::string(500, 'z'));
  const size_t second = client_frame(0x01, "ok \xE2").size();
  feed_chunks(r, h, s.substr(0, second + 8 + 2), {second + 8 + 1});
  EXPECT_EQ(h.events, Events{fail_ev(Error::InvalidUtf8)});
}

TEST(Receiver, TextArrivingInPiecesIsNotFailedEarly) {
  // Valid text split inside multi-byte characters, one byte at a time.
  std::string text_payload;
  for (int i = 0; i < 3000; ++i) text_payload += (i % 3 == 0) ? "\xE2\x82\xAC" : (i % 3 == 1) ? "\xF0\x9F\x98\x80" : "x";
  std::string s = text(text_payload) + client_frame(0x01, text_payload) + ping("p") +
                  client_frame(0x80, text_payload);
  std::vector<size_t> cuts;
  for (size_t i = 1; i < s.size(); ++i) cuts.push_back(i);
  Recorder h;
  Receiver r;
  feed_chunks(r, h, s, cuts);
  EXPECT_EQ(h.events, (Events{text_msg(text_payload), ping_ev("p"),
                              text_msg(text_payload + text_payload)}));
  // Binary and compressed frames are not looked at before they are complete.
  std::string junk(300, '\xFF');
  Recorder hb;
  Receiver rb;
  std::string bs = binary(junk);
  feed_chunks(rb, hb, bs, {20, 100});
  EXPECT_EQ(hb.events, Events{msg(Opcode::Binary, junk)});
}

TEST(Receiver, BinaryIsNotUtf8Checked) {
  std::string junk = "\xFF\xFE\xC0\x80\xED\xA0\x80";
  EXPECT_EQ(run(binary(junk)), Events{msg(Opcode::Binary, junk)});
  EXPECT_EQ(run(client_frame(0x02, "\xE2") + client_frame(0x80, "A")),
            Events{msg(Opcode::Binary, "\xE2" "A")});
}

// ---------------------------------------------------------------------------
// --max-message-size on the wire.

TEST(Receiver, MaxMessageSizeUnfragmented) {
  const uint64_t max = 1000;
  EXPECT_EQ(run(text(std::string(max, 'a')), max), Events{text_msg(std::string(max, 'a'))});
  EXPECT_EQ(run(text(std::string(max + 1, 'a')), max), Events{fail_ev(Error::MessageTooBig)});
  EXPECT_EQ(close_code_for(Error::MessageTooBig), 1009);
}

TEST(Receiver, MaxMessageSizeCountsEveryFragment) {
  const uint64_t max = 1000;
  std::string ok = client_frame(0x01, std::string(600, 'a')) + ping("x") +
                   client_frame(0x80, std::string(400, 'b'));
  EXPECT_EQ(run(ok, max),
            (Events{ping_ev("x"), text_msg(std::string(600, 'a') + std::string(400, 'b'))}));
  // The fragment that crosses the limit fails when its header arrives.
  std::string big = client_frame(0x02, std::string(600, 'a')) +
                    client_frame(0x00, std::string(300, 'b')) +
                    client_frame(0x80, std::string(101, 'c'));
  EXPECT_EQ(run(big, max), Events{fail_ev(Error::MessageTooBig)});
  Recorder h;
  h.max = max;
  Receiver r;
  std::string prefix = big.substr(0, big.size() - 101);  // header of the last fragment only
  feed_whole(r, h, prefix);
  EXPECT_EQ(h.events, Events{fail_ev(Error::MessageTooBig)});
  // Control frames do not count toward the message.
  std::string with_pings = client_frame(0x01, std::string(1000, 'a')) + ping(std::string(125, 'p')) +
                           client_frame(0x80, "");
  EXPECT_EQ(run(with_pings, max),
            (Events{ping_ev(std::string(125, 'p')), text_msg(std::string(1000, 'a'))}));
}

// ---------------------------------------------------------------------------
// permessage-deflate (RFC 7692 §7.2.3 examples, sent by a client so masked).

const std::string kHelloDeflated = bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});

TEST(ReceiverDeflate, Rfc7692HelloUnfragmented) {
  EXPECT_EQ(run_deflate(client_frame(0xC1, kHelloDeflated)), Events{text_msg("Hello")});
}

TEST(ReceiverDeflate, Rfc7692HelloFragmented) {
  std::string s = client_frame(0x41, bytes({0xf2, 0x48, 0xcd})) +
                  client_frame(0x80, bytes({0xc9, 0xc9, 0x07, 0x00}));
  EXPECT_EQ(run_deflate(s), Events{text_msg("Hello")});
  // With a control frame in between.
  std::string c = client_frame(0x41, bytes({0xf2, 0x48, 0xcd})) + ping("p") +
                  client_frame(0x80, bytes({0xc9, 0xc9, 0x07, 0x00}));
  EXPECT_EQ(run_deflate(c), (Events{ping_ev("p"), text_msg("Hello")}));
}

TEST(ReceiverDeflate, Rfc7692SharingTheSlidingWindow) {
  // The second "Hello" refers back into the first message (context takeover).
  std::string s = client_frame(0xC1, kHelloDeflated) +
                  client_frame(0xC1, bytes({0xf2, 0x00, 0x11, 0x00, 0x00}));
  EXPECT_EQ(run_deflate(s, /*reset=*/false), (Events{text_msg("Hello"), text_msg("Hello")}));
  // With client_no_context_takeover the window is dropped after each
  // message, so the back-reference is invalid data.
  EXPECT_EQ(run_deflate(s, /*reset=*/true),
            (Events{text_msg("Hello"), fail_ev(Error::CompressionError)}));
  EXPECT_EQ(close_code_for(Error::CompressionError), 1002);
}

TEST(ReceiverDeflate, Rfc7692StoredBlockFinalBlockAndTwoBlocks) {
  std::string stored =
      bytes({0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00});
  std::string bfinal = bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00});
  std::string two = bytes({0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9,
                           0x07, 0x00});
  for (bool reset : {false, true}) {
    EXPECT_EQ(run_deflate(client_frame(0xC1, stored) + client_frame(0xC1, bfinal) +
                              client_frame(0xC1, two) + client_frame(0xC1, kHelloDeflated),
                          reset),
              (Events{text_msg("Hello"), text_msg("Hello"), text_msg("Hello"),
                      text_msg("Hello")}));
  }
}

TEST(ReceiverDeflate, MessagesEndingWithAFinalBlockKeepTheStreamUsable) {
  // A sender that ends each message with BFINAL and no trailing empty block:
  // the appended 00 00 ff ff must not leave the inflater inside a stored
  // block that swallows the next message.
  std::string bfinal_only = bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
  for (bool reset : {false, true}) {
    EXPECT_EQ(run_deflate(client_frame(0xC1, bfinal_only) + client_frame(0xC1, bfinal_only) +
                              client_frame(0xC1, kHelloDeflated),
                          reset),
              (Events{text_msg("Hello"), text_msg("Hello"), text_msg("Hello")}))
        << reset;
  }
}

TEST(ReceiverDeflate, EmptyCompressedMessage) {
  EXPECT_EQ(run_deflate(client_frame(0xC1, bytes({0x00}))), Events{text_msg("")});
  EXPECT_EQ(run_deflate(client_frame(0xC2, bytes({0x00}))), Events{msg(Opcode::Binary, "")});
}

TEST(ReceiverDeflate, UncompressedMessagesStillWork) {
  // RSV1 clear: the message is not compressed even though deflate was agreed.
  EXPECT_EQ(run_deflate(text("plain") + client_frame(0xC1, kHelloDeflated) + binary("raw")),
            (Events{text_msg("plain"), text_msg("Hello"), msg(Opcode::Binary, "raw")}));
}

TEST(ReceiverDeflate, Rsv1OnlyOnTheFirstFrameOfADataMessage) {
  EXPECT_EQ(run_deflate(client_frame(0x41, bytes({0xf2, 0x48, 0xcd})) +
                        client_frame(0xC0, bytes({0xc9, 0xc9, 0x07, 0x00}))),
            Events{fail_ev(Error::ReservedBits)});
  EXPECT_EQ(run_deflate(client_frame(0xC9, "")), Events{fail_ev(Error::ReservedBits)});
  EXPECT_EQ(run_deflate(client_frame(0xC8, "")), Events{fail_ev(Error::ReservedBits)});
  EXPECT_EQ(run_deflate(client_frame(0xE1, kHelloDeflated)), Events{fail_ev(Error::ReservedBits)});
}

TEST(ReceiverDeflate, Utf8IsCheckedOnTheInflatedText) {
  EXPECT_EQ(run_deflate(client_frame(0xC1, client_deflate("bad \xFF text"))),
            Events{fail_ev(Error::InvalidUtf8)});
  std::string multi = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80";
  std::string z = client_deflate(multi);
  // Split the compressed bytes at every point over two frames.
  for (size_t i = 0; i <= z.size(); ++i) {
    EXPECT_EQ(run_deflate(client_frame(0x41, z.substr(0, i)) + client_frame(0x80, z.substr(i))),
              Events{text_msg(multi)});
  }
  EXPECT_EQ(run_deflate(client_frame(0xC2, client_deflate("\xFF\xFE"))),
            Events{msg(Opcode::Binary, "\xFF\xFE")});
}

TEST(ReceiverDeflate, FragmentedTextFailsAtTheFrameWithTheBadByte) {
  // The message never ends: the bad byte must fail it at its own frame.
  std::string z = client_deflate("good start, then \xFF bad");
  EXPECT_EQ(run_deflate(client_frame(0x41, z)), Events{fail_ev(Error::InvalidUtf8)});
  EXPECT_EQ(run_deflate(client_frame(0x41, z), /*reset=*/true),
            Events{fail_ev(Error::InvalidUtf8)});
  // Bad byte in the second of three frames (one compressed stream over them).
  z_stream zs{};
  ASSERT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
  // (A flush inside a message keeps its 00 00 ff ff: only the message's end drops it.)
  std::string a = client_deflate("first part ok, ", 15, &zs) + bytes({0, 0, 0xff, 0xff});
  std::string b = client_deflate("second \xC3\x28 broken", 15, &zs);
  deflateEnd(&zs);
  EXPECT_EQ(run_deflate(client_frame(0x41, a) + ping("p") + client_frame(0x00, b)),
            (Events{ping_ev("p"), fail_ev(Error::InvalidUtf8)}));
  // A character split across two frames is fine; one left unfinished is not.
  ASSERT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
  a = client_deflate("caf\xC3", 15, &zs) + bytes({0, 0, 0xff, 0xff});
  b = client_deflate("\xA9!", 15, &zs);
  deflateEnd(&zs);
  EXPECT_EQ(run_deflate(client_frame(0x41, a) + client_frame(0x80, b)),
            Events{text_msg("caf\xC3\xA9!")});
  EXPECT_EQ(run_deflate(client_frame(0x41, a) + client_frame(0x80, "")),
            Events{fail_ev(Error::InvalidUtf8)});
}

TEST(ReceiverDeflate, FragmentedMessageKeepsItsOwnInflaterWithoutContextTakeover) {
  // Without client context takeover the handler's inflater is shared by the
  // thread's connections: another connection inflating between our frames
  // must not disturb a message in progress.
  std::string m;
  for (int i = 0; i < 200; ++i) m += "fragment text " + std::to_string(i) + "; ";
  std::string z = client_deflate(m);
  Recorder h;
  h.deflate = true;
  h.reset_inflater = true;
  Receiver r;
  feed_whole(r, h, client_frame(0x41, z.substr(0, z.size() / 2)));
  EXPECT_TRUE(h.events.empty());
  Buffer other;
  std::string z2 = client_deflate("another connection's message");
  ASSERT_EQ(h.inflater()->inflate_message(reinterpret_cast<const uint8_t*>(z2.data()),
                                          z2.size(), other, 1 << 20, true),
            Inflater::Result::Ok);
  feed_whole(r, h, client_frame(0x80, z.substr(z.size() / 2)));
  EXPECT_EQ(h.events, Events{text_msg(m)});
}

TEST(ReceiverDeflate, FragmentedBombFailsAtTheFirstFrameOverTheLimit) {
  std::string zeros(1 << 20, '\0');
  std::string bomb = client_deflate(zeros);
  for (bool reset : {false, true}) {
    // The first frame alone inflates past 64 KiB; the message never ends.
    EXPECT_EQ(run_deflate(client_frame(0x42, bomb.substr(0, bomb.size() / 2)), reset, 64 * 1024),
              Events{fail_ev(Error::MessageTooBig)});
  }
  // The limit on the wire counts compressed bytes across frames.
  std::string noise;
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) noise += static_cast<char>(rng());
  std::string z = client_deflate(noise);
  ASSERT_GT(z.size(), 2000u);
  EXPECT_EQ(run_deflate(client_frame(0x42, z.substr(0, 1500)) + client_frame(0x80, z.substr(1500)),
                        false, 2000),
            Events{fail_ev(Error::MessageTooBig)});
}

TEST(ReceiverDeflate, InflaterFailureIsAnInternalError1011) {
  // zlib refusing to start (here: an impossible window) is the server's
  // fault, not the client's: Error::Internal, closed with 1011.
  for (bool fragmented : {false, true}) {
    Recorder h;
    h.deflate = true;
    h.inflater_bits = 99;
    std::string frames = fragmented ? client_frame(0x41, kHelloDeflated) + client_frame(0x80, "")
                                    : client_frame(0xC1, kHelloDeflated);
    EXPECT_EQ(run(frames, h), Events{fail_ev(Error::Internal)}) << fragmented;
  }
  EXPECT_EQ(close_code_for(Error::Internal), close_code::kInternalError);
  EXPECT_EQ(close_code_for(Error::Internal), 1011);
  EXPECT_EQ(error_kind(Error::Internal), "internal");
}

TEST(ReceiverDeflate, GarbageIsACompressionError) {
  EXPECT_EQ(run_deflate(client_frame(0xC1, bytes({0xff, 0xff, 0xff, 0xff}))),
            Events{fail_ev(Error::CompressionError)});
  // A final block followed by a broken stored block.
  EXPECT_EQ(run_deflate(client_frame(0xC1, bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00,
                                                  0x41, 0x41}))),
            Events{fail_ev(Error::CompressionError)});
  // A final block followed by a block of the reserved type 11.
  EXPECT_EQ(run_deflate(client_frame(0xC1, bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00,
                                                  0xff}))),
            Events{fail_ev(Error::CompressionError)});
}

TEST(ReceiverDeflate, MaxMessageSizeAfterInflating) {
  // A small deflate bomb: 1 MiB of zeros in about a kilobyte.
  std::string zeros(1 << 20, '\0');
  std::string bomb = client_deflate(zeros);
  ASSERT_LT(bomb.size(), 2048u);
  EXPECT_EQ(run_deflate(client_frame(0xC2, bomb), false, 64 * 1024),
            Events{fail_ev(Error::MessageTooBig)});
  EXPECT_EQ(run_deflate(client_frame(0xC2, bomb), true, 64 * 1024),
            Events{fail_ev(Error::MessageTooBig)});
  // Exactly at the limit is fine; one byte over is not.
  std::string exact(5000, 'x');
  EXPECT_EQ(run_deflate(client_frame(0xC1, client_deflate(exact)), false, 5000),
            Events{text_msg(exact)});
  EXPECT_EQ(run_deflate(client_frame(0xC1, client_deflate(exact + "y")), false, 5000),
            Events{fail_ev(Error::MessageTooBig)});
}

TEST(ReceiverDeflate, ContextTakeoverOverManyMessages) {
  z_stream zs{};
  ASSERT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string stream;
  Events want;
  for (int i = 0; i < 50; ++i) {
    std::string m = R"({"type":"Message","channel":"room:)" + std::to_string(i % 3) +
                    R"(","content":"hello number )" + std::to_string(i) + "\"}";
    stream += client_frame(0xC1, client_deflate(m, 15, &zs));
    want.push_back(text_msg(m));
  }
  deflateEnd(&zs);
  EXPECT_EQ(run_deflate(stream, false), want);
}

TEST(ReceiverDeflate, ClientWindowSmallerThanOurs) {
  // A client that negotiated client_max_window_bits=10 compresses with a
  // 1 KiB window; an inflater with that window decodes it.
  std::string m;
  for (int i = 0; i < 300; ++i) m += "line " + std::to_string(i % 17) + " of the message\n";
  Recorder h;
  h.deflate = true;
  h.inflater_bits = 10;
  EXPECT_EQ(run(client_frame(0xC1, client_deflate(m, 10)), h), Events{text_msg(m)});
}

// ---------------------------------------------------------------------------
// Splitting: the owner feeds whatever arrived, keeps the unconsumed tail and
// feeds it again with more bytes appended. Any split must give the same
// result as the whole stream.

std::string mixed_stream() {
  std::string b200(200, '\0');
  for (size_t i = 0; i < b200.size(); ++i) b200[i] = static_cast<char>(i * 13);
  return bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}) +
         client_frame(0x01, "Hel") + ping("ping!") + client_frame(0x80, "lo") +
         binary(b200) + binary(std::string(300, 'z')) +
         client_frame(0x01, "\xE2\x82") + pong("") + client_frame(0x00, "\xAC x ") +
         client_frame(0x80, "\xF0\x9F\x98\x80") + text("") + close_frame(1000, "done");
}

void expect_same_for_every_split(const std::string& s, const Recorder& proto) {
  auto make = [&] {
    auto h = std::make_unique<Recorder>();
    h->max = proto.max;
    h->deflate = proto.deflate;
    h->reset_inflater = proto.reset_inflater;
    h->inflater_bits = proto.inflater_bits;
    return h;
  };
  auto whole = make();
  {
    Receiver r;
    feed_whole(r, *whole, s);
  }
  ASSERT_FALSE(whole->events.empty());
  for (size_t i = 0; i <= s.size(); ++i) {
    auto h = make();
    Receiver r;
    feed_chunks(r, *h, s, {i});
    ASSERT_EQ(h->events, whole->events) << "split at " << i;
  }
  // Byte by byte.
  auto h = make();
  Receiver r;
  std::vector<size_t> cuts;
  for (size_t i = 1; i < s.size(); ++i) cuts.push_back(i);
  feed_chunks(r, *h, s, cuts);
  EXPECT_EQ(h->events, whole->events) << "byte by byte";
  // Random multi-way splits (fixed seed).
  std::mt19937 rng(2024);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<size_t> c;
    size_t pos = 0;
    while (pos < s.size()) {
      pos += 1 + rng() % 40;
      if (pos < s.size()) c.push_back(pos);
    }
    auto hr = make();
    Receiver rr;
    feed_chunks(rr, *hr, s, c);
    ASSERT_EQ(hr->events, whole->events) << "trial " << trial;
  }
}

TEST(ReceiverSplit, MixedStream) {
  Recorder proto;
  expect_same_for_every_split(mixed_stream(), proto);
  Recorder whole;
  Receiver r;
  feed_whole(r, whole, mixed_stream());
  EXPECT_EQ(whole.events.size(), 9u);
  EXPECT_EQ(whole.events.back(), close_ev(1000, "done"));
}

TEST(ReceiverSplit, DeflateStreams) {
  std::string s = client_frame(0xC1, kHelloDeflated) +
                  client_frame(0xC1, bytes({0xf2, 0x00, 0x11, 0x00, 0x00})) +
                  client_frame(0x41, bytes({0xf2, 0x48, 0xcd})) + ping("x") +
                  client_frame(0x80, bytes({0xc9, 0xc9, 0x07, 0x00})) + text("plain") +
                  client_frame(0xC1, bytes({0x00})) + close_frame(1001);
  Recorder proto;
  proto.deflate = true;
  expect_same_for_every_split(s, proto);
  proto.reset_inflater = true;  // ends with a compression error: same everywhere too
  expect_same_for_every_split(s, proto);
}

TEST(ReceiverSplit, ErrorStreams) {
  Recorder proto;
  proto.max = 1000;
  for (const auto& c : error_cases()) {
    SCOPED_TRACE(c.name);
    if (c.stream.size() > 2000) continue;
    expect_same_for_every_split(c.stream + text("never seen"), proto);
  }
}

TEST(ReceiverSplit, LargeFramesInRandomChunks) {
  std::string big(70000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  std::string s = binary(big) + client_frame(0x01, big.substr(0, 30000)) + ping("in between") +
                  client_frame(0x80, big.substr(30000)) + close_frame(1000);
  Recorder whole;
  {
    Receiver r;
    feed_whole(r, whole, s);
  }
  ASSERT_EQ(whole.events.size(), 4u);
  std::mt19937 rng(99);
  for (int trial = 0; trial < 30; ++trial) {
    std::vector<size_t> cuts;
    size_t pos = 0;
    while (pos < s.size()) {
      pos += 1 + rng() % (trial % 2 ? 20 : 5000);
      if (pos < s.size()) cuts.push_back(pos);
    }
    Recorder h;
    Receiver r;
    feed_chunks(r, h, s, cuts);
    ASSERT_EQ(h.events, whole.events) << "trial " << trial;
  }
}

// ---------------------------------------------------------------------------
// The error table itself.

TEST(CloseCodes, EveryErrorHasACodeAKindAndADescription) {
  const Error all[] = {Error::None,          Error::UnmaskedFrame,
                       Error::ReservedBits,  Error::ReservedOpcode,
                       Error::FragmentedControl, Error::ControlTooLong,
                       Error::BadLength,     Error::UnexpectedContinuation,
                       Error::ExpectedContinuation, Error::BadClosePayload,
                       Error::InvalidCloseCode, Error::InvalidUtf8,
                       Error::MessageTooBig, Error::CompressionError};
  std::set<std::string_view> descriptions;
  for (Error e : all) {
    uint16_t code = close_code_for(e);
    if (e == Error::None) {
      EXPECT_EQ(code, 1000);
    } else if (e == Error::InvalidUtf8) {
      EXPECT_EQ(code, 1007);
      EXPECT_EQ(error_kind(e), "invalid_utf8");
    } else if (e == Error::MessageTooBig) {
      EXPECT_EQ(code, 1009);
      EXPECT_EQ(error_kind(e), "message_too_big");
    } else {
      EXPECT_EQ(code, 1002) << describe(e);
    }
    EXPECT_NE(describe(e), "unknown");
    EXPECT_TRUE(descriptions.insert(describe(e)).second) << describe(e);
    // Every code we send must be one a peer may send back (and not 1005/1006).
    if (e != Error::None) {
      EXPECT_TRUE(is_valid_received_close_code(code));
    }
  }
  EXPECT_EQ(error_kind(Error::CompressionError), "compression");
  EXPECT_EQ(error_kind(Error::UnmaskedFrame), "protocol");
  EXPECT_TRUE(is_valid_received_close_code(close_code::kHeartbeatTimeout));
  EXPECT_TRUE(is_valid_received_close_code(close_code::kSlowConsumer));
  EXPECT_FALSE(is_valid_received_close_code(close_code::kNoStatus));
  EXPECT_FALSE(is_valid_received_close_code(close_code::kAbnormal));
}

}  // namespace
}  // namespace wstrace::ws
