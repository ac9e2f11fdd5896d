// permessage-deflate (RFC 7692): negotiation of the four parameters, and the
// compressor/decompressor the engine uses.
//
// Memory policy: the server always answers server_no_context_takeover, so it
// never keeps compressor state per connection — one compressor per thread
// (and per window size) compresses each broadcast once for every subscriber.
// A client that does not offer client_no_context_takeover keeps its window
// between messages, so the server must too: such a connection gets its own
// inflater (created at its first compressed message) whose window the server
// caps with client_max_window_bits when the client allows it.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "util/buffer.h"

namespace wstrace::ws {

struct DeflateParams {
  bool client_no_context_takeover = false;  // client resets its window per message
  uint8_t server_window_bits = 15;          // window we compress with
  uint8_t client_window_bits = 15;          // window the client compresses with
};

struct DeflatePolicy {
  // Largest client window we ask for when the client lets us choose
  // (client_max_window_bits offered). 9..15.
  uint8_t client_window_cap = 10;
};

// Picks the first acceptable permessage-deflate offer in a
// Sec-WebSocket-Extensions value (several header lines joined with ", ").
// On success fills `params` and the response header value; nullopt when no
// offer is acceptable (the connection then runs uncompressed).
std::optional<DeflateParams> negotiate_deflate(std::string_view extensions,
                                               const DeflatePolicy& policy,
                                               std::string* response);

// Raw-deflate compressor that resets after every message.
class Deflater {
 public:
  explicit Deflater(int window_bits = 15);
  ~Deflater();
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;

  // Appends the compressed form of one whole message to `out` (without the
  // 00 00 ff ff tail, §7.2.1). False on a zlib failure.
  bool compress(const uint8_t* in, size_t n, Buffer& out);

 private:
  z_stream zs_{};
  bool ok_ = false;
};

// Raw-deflate decompressor for one stream of messages.
class Inflater {
 public:
  explicit Inflater(int window_bits = 15);
  ~Inflater();
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;

  // Error: the data is not a valid deflate stream. Internal: zlib itself
  // failed (out of memory, a broken stream state) — not the client's fault.
  enum class Result : uint8_t { Ok, TooBig, Error, Internal };
  // Decompresses one message (the payloads of all its frames, concatenated)
  // and appends it to `out`. Fails with TooBig as soon as the output would
  // pass `max_size`. `reset` drops the window afterwards (no context takeover).
  Result inflate_message(const uint8_t* in, size_t n, Buffer& out, size_t max_size, bool reset);

  // The same in parts, as the frames of a fragmented message arrive: each
  // part's output is appended to `out` at once (so it can be checked before
  // the message ends); the message starts at offset `start` of `out` and may
  // not grow past `max_size`. finish_message() ends it (the §7.2.2 tail).
  // After a failure the inflater is reset and the message is lost.
  Result inflate_part(const uint8_t* in, size_t n, Buffer& out, size_t start, size_t max_size);
  Result finish_message(Buffer& out, size_t start, size_t max_size, bool reset);

 private:
  Result run(const uint8_t* in, size_t n, Buffer& out, size_t start, size_t max_size,
             bool* ended);
  z_stream zs_{};
  bool ok_ = false;
  bool ended_ = false;  // the input so far ended exactly with a final block
};

}  // namespace wstrace::ws
