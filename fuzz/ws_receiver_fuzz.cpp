// libFuzzer target: the RFC 6455 receive state machine, with and without
// permessage-deflate. The first byte chooses the setup; the rest is the byte
// stream from a client. The stream is fed twice — whole, and in chunks the
// way a connection feeds it (unconsumed tail kept, more bytes appended) —
// and both runs must report exactly the same events.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "util/buffer.h"
#include "ws/receiver.h"

using namespace wstrace;
using namespace wstrace::ws;

namespace {

struct Handler {
  std::string log;  // every event, serialised
  bool finished = false;
  bool deflate = false;
  bool reset = false;
  int bits = 15;
  uint64_t max = 1 << 20;
  std::unique_ptr<Inflater> inf;
  Buffer buf;

  void event(char kind, const void* p, size_t n, uint32_t extra = 0) {
    FUZZ_CHECK(!finished);  // nothing after an error or a Close
    log.push_back(kind);
    log.append(std::to_string(n) + ":" + std::to_string(extra) + ":");
    log.append(static_cast<const char*>(p), n);
  }
  void on_message(Opcode op, uint8_t* data, size_t len) {
    FUZZ_CHECK(op == Opcode::Text || op == Opcode::Binary);
    FUZZ_CHECK(len <= max);
    if (op == Opcode::Text) FUZZ_CHECK(is_valid_utf8(data, len));
    event('M', data, len, static_cast<uint32_t>(op));
  }
  void on_ping(const uint8_t* data, size_t len) {
    FUZZ_CHECK(len <= kMaxControlPayload);
    event('P', data, len);
  }
  void on_pong(const uint8_t* data, size_t len) {
    FUZZ_CHECK(len <= kMaxControlPayload);
    event('Q', data, len);
  }
  void on_close(uint16_t code, std::string_view reason) {
    FUZZ_CHECK(code == close_code::kNoStatus || is_valid_received_close_code(code));
    FUZZ_CHECK(is_valid_utf8(reinterpret_cast<const uint8_t*>(reason.data()), reason.size()));
    event('C', reason.data(), reason.size(), code);
    finished = true;
  }
  void on_error(Error e) {
    FUZZ_CHECK(e != Error::None);
    const uint16_t code = close_code_for(e);
    FUZZ_CHECK(code == 1002 || code == 1007 || code == 1009);
    event('E', "", 0, static_cast<uint32_t>(e));
    finished = true;
  }
  bool keep_reading() { return true; }
  bool deflate_negotiated() { return deflate; }
  Inflater* inflater() {
    FUZZ_CHECK(deflate);
    if (!inf) inf = std::make_unique<Inflater>(bits);
    return inf.get();
  }
  bool inflate_reset() { return reset; }
  Buffer& scratch() { return buf; }
  uint64_t max_message_size() { return max; }
};

void setup(Handler& h, uint8_t flags) {
  static constexpr uint64_t kMaxes[] = {125, 1000, 65536, 1 << 20};
  h.deflate = flags & 1;
  h.reset = flags & 2;
  h.max = kMaxes[(flags >> 2) & 3];
  h.bits = 9 + ((flags >> 4) % 7);
}

void feed(Handler& h, const uint8_t* data, size_t size, uint32_t seed, bool whole) {
  Receiver r;
  Buffer in;
  size_t pos = 0;
  while (pos < size) {
    size_t n = size - pos;
    if (!whole) {
      seed = seed * 1103515245u + 12345u;
      n = std::min<size_t>(n, 1 + (seed >> 16) % 23);
    }
    in.append(data + pos, n);
    pos += n;
    if (r.done()) continue;
    uint64_t pending = 0;
    size_t used = r.feed(in.data(), in.size(), h, pending);
    FUZZ_CHECK(used <= in.size());
    if (pending != 0) {
      FUZZ_CHECK(pending > in.size() - used);
      FUZZ_CHECK(!r.done());
    }
    in.consume(used);
  }
  FUZZ_CHECK(r.done() == h.finished);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  ++data;
  --size;
  Handler whole, split;
  setup(whole, flags);
  setup(split, flags);
  feed(whole, data, size, 0, true);
  feed(split, data, size, flags * 2654435761u, false);
  FUZZ_CHECK(whole.log == split.log);
  return 0;
}
