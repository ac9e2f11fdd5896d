// Helpers for the ws tests: a client-frame builder written independently of
// ws/frame.h, and a Receiver handler that records what it is told.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "util/buffer.h"
#include "ws/close_code.h"
#include "ws/deflate.h"
#include "ws/frame.h"
#include "ws/receiver.h"

namespace wstrace::ws::test {

inline std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int v : b) s.push_back(static_cast<char>(v));
  return s;
}

constexpr uint8_t kMask[4] = {0x37, 0xfa, 0x21, 0x3d};  // the RFC 6455 §5.7 example mask

// A frame as a client sends it: `b0` is the first byte as is (FIN, RSV, opcode),
// then the shortest length encoding, the mask and the masked payload.
inline std::string client_frame(uint8_t b0, std::string_view payload, bool masked = true,
                                const uint8_t* mask = kMask) {
  std::string f;
  f.push_back(static_cast<char>(b0));
  const uint8_t mbit = masked ? 0x80 : 0;
  const uint64_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(mbit | n));
  } else if (n < 65536) {
    f.push_back(static_cast<char>(mbit | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xff));
  } else {
    f.push_back(static_cast<char>(mbit | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  }
  if (masked) f.append(reinterpret_cast<const char*>(mask), 4);
  for (size_t i = 0; i < payload.size(); ++i) {
    f.push_back(static_cast<char>(payload[i] ^ (masked ? mask[i % 4] : 0)));
  }
  return f;
}

// First bytes of common frames.
constexpr uint8_t kFin = 0x80;
constexpr uint8_t kRsv1 = 0x40;
inline std::string text(std::string_view p) { return client_frame(kFin | 0x1, p); }
inline std::string binary(std::string_view p) { return client_frame(kFin | 0x2, p); }
inline std::string ping(std::string_view p) { return client_frame(kFin | 0x9, p); }
inline std::string pong(std::string_view p) { return client_frame(kFin | 0xA, p); }
inline std::string close_frame(uint16_t code, std::string_view reason = {}) {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code & 0xff));
  p.append(reason);
  return client_frame(kFin | 0x8, p);
}

struct Event {
  enum Kind { Message, Ping, Pong, Close, Fail } kind = Message;
  int opcode = 0;
  std::string data;  // message/ping/pong payload, close reason
  uint16_t code = 0;
  Error error = Error::None;

  bool operator==(const Event& o) const {
    return kind == o.kind && opcode == o.opcode && data == o.data && code == o.code &&
           error == o.error;
  }
};

inline std::ostream& operator<<(std::ostream& os, const Event& e) {
  static const char* kNames[] = {"Message", "Ping", "Pong", "Close", "Fail"};
  os << kNames[e.kind] << "(op=" << e.opcode << ", " << e.data.size() << " bytes";
  if (e.kind == Event::Close) os << ", code=" << e.code;
  if (e.kind == Event::Fail) os << ", " << describe(e.error);
  return os << ")";
}

inline Event msg(Opcode op, std::string d) { return {Event::Message, static_cast<int>(op), std::move(d)}; }
inline Event text_msg(std::string d) { return msg(Opcode::Text, std::move(d)); }
inline Event ping_ev(std::string d) { return {Event::Ping, 0, std::move(d)}; }
inline Event pong_ev(std::string d) { return {Event::Pong, 0, std::move(d)}; }
inline Event close_ev(uint16_t code, std::string reason = {}) {
  return {Event::Close, 0, std::move(reason), code};
}
inline Event fail_ev(Error e) { return {Event::Fail, 0, {}, 0, e}; }

// The handler the Receiver calls back.
struct Recorder {
  std::vector<Event> events;
  uint64_t max = 1 << 20;
  bool deflate = false;
  bool reset_inflater = false;  // client_no_context_takeover
  int inflater_bits = 15;
  bool keep = true;
  std::unique_ptr<Inflater> inf;
  Buffer buf;

  void on_message(Opcode op, uint8_t* data, size_t len) {
    events.push_back(msg(op, std::string(reinterpret_cast<char*>(data), len)));
  }
  void on_ping(const uint8_t* data, size_t len) {
    events.push_back(ping_ev(std::string(reinterpret_cast<const char*>(data), len)));
  }
  void on_pong(const uint8_t* data, size_t len) {
    events.push_back(pong_ev(std::string(reinterpret_cast<const char*>(data), len)));
  }
  void on_close(uint16_t code, std::string_view reason) {
    events.push_back(close_ev(code, std::string(reason)));
  }
  void on_error(Error e) { events.push_back(fail_ev(e)); }
  bool keep_reading() { return keep; }
  bool deflate_negotiated() { return deflate; }
  Inflater* inflater() {
    EXPECT_TRUE(deflate) << "inflater() called without deflate";
    if (!inf) inf = std::make_unique<Inflater>(inflater_bits);
    return inf.get();
  }
  bool inflate_reset() { return reset_inflater; }
  Buffer& scratch() { return buf; }
  uint64_t max_message_size() { return max; }
};

// Feeds `stream` the way the connection owner does: each chunk is appended
// to what the receiver left unconsumed, and the whole tail is fed again.
// `cuts` are the chunk boundaries (offsets into `stream`, increasing).
// Also checks the contract of `pending` and of the return value.
inline void feed_chunks(Receiver& r, Recorder& h, std::string_view stream,
                        const std::vector<size_t>& cuts) {
  Buffer in;
  size_t prev = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(stream.size());
  for (size_t end : ends) {
    if (end < prev) continue;
    in.append(stream.data() + prev, end - prev);
    prev = end;
    if (r.done()) continue;
    uint64_t pending = 12345;
    size_t used = r.feed(in.data(), in.size(), h, pending);
    EXPECT_LE(used, in.size());
    if (pending != 0) {
      // The frame that stopped us is larger than what is left.
      EXPECT_GT(pending, in.size() - used);
      EXPECT_FALSE(r.done());
    }
    in.consume(used);
  }
}

inline void feed_whole(Receiver& r, Recorder& h, std::string_view stream) {
  feed_chunks(r, h, stream, {});
}

}  // namespace wstrace::ws::test
