// The client protocol (docs/PROTOCOL.md): JSON objects in text frames.
// Parsing is I/O-free and allocation-free after warm-up (a simdjson parser
// per thread); the encoders append the server's messages to a Buffer.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "util/buffer.h"

namespace wstrace::protocol {

enum class Type : uint8_t { Ping, Subscribe, Unsubscribe, Message };
constexpr int kTypeCount = 4;
std::string_view type_name(Type t);

// X(enumerator, wire name)
#define WSTRACE_ERROR_CODES(X)                       \
  X(InvalidJson, "invalid_json")                     \
  X(UnknownType, "unknown_type")                     \
  X(MissingField, "missing_field")                   \
  X(InvalidChannel, "invalid_channel")               \
  X(MessageTooLarge, "message_too_large")            \
  X(TooManySubscriptions, "too_many_subscriptions")  \
  X(NotSubscribed, "not_subscribed")                 \
  X(UnsupportedFrame, "unsupported_frame")           \
  X(RateLimited, "rate_limited")                     \
  X(Unauthorized, "unauthorized")

enum class ErrorCode : uint8_t {
#define WSTRACE_X(e, name) e,
  WSTRACE_ERROR_CODES(WSTRACE_X)
#undef WSTRACE_X
};
constexpr int kErrorCodeCount = 10;
std::string_view error_code_name(ErrorCode c);

// The optional "id" of a client message, echoed verbatim in the direct reply.
struct Id {
  enum class Kind : uint8_t { None, String, Int, Uint, Double };
  Kind kind = Kind::None;
  std::string_view str;
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;
};

struct ClientMessage {
  Type type = Type::Ping;
  std::string_view channel;      // Subscribe, Unsubscribe, Message
  std::string_view content;      // Message (unescaped)
  std::string_view traceparent;  // optional, not yet validated
  Id id;
};

struct ParseError {
  ErrorCode code;
  std::string_view message;
  Id id;  // echoed when the message was an object with a usable id
};

// 1–128 bytes of [A-Za-z0-9_.:/-].
bool valid_channel(std::string_view name);
constexpr size_t kMaxChannelLength = 128;

// One per thread. Views in the results stay valid until the next parse().
class Parser {
 public:
  explicit Parser(size_t max_message_size);
  ~Parser();
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  // `data` must have Buffer::kPadding readable bytes after `len`.
  // Returns true and fills `out`, or false and fills `err`.
  bool parse(const uint8_t* data, size_t len, ClientMessage& out, ParseError& err);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Encoders: append the JSON payload (no frame header).
void encode_pong(Buffer& out, const Id& id);
void encode_subscribed(Buffer& out, std::string_view channel, const Id& id);
void encode_unsubscribed(Buffer& out, std::string_view channel, const Id& id);
void encode_error(Buffer& out, ErrorCode code, std::string_view message, const Id& id);
void encode_message(Buffer& out, std::string_view channel, std::string_view content);

}  // namespace wstrace::protocol
