// The client protocol (docs/PROTOCOL.md): JSON objects in text frames.
// Parsing is I/O-free and allocation-free after warm-up (a simdjson parser
// per thread); the encoders append the server's messages to a Buffer.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "util/buffer.h"

namespace wstrace::protocol {

enum class Type : uint8_t { Ping, Subscribe, Unsubscribe, Message, History, Refresh, Presence };
constexpr int kTypeCount = 7;
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
  X(Unauthorized, "unauthorized")                    \
  X(Unavailable, "unavailable")                      \
  X(Forbidden, "forbidden")                          \
  X(NotEnabled, "not_enabled")

enum class ErrorCode : uint8_t {
#define WSTRACE_X(e, name) e,
  WSTRACE_ERROR_CODES(WSTRACE_X)
#undef WSTRACE_X
};
constexpr int kErrorCodeCount = 13;
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

// A position in a channel's stream: "since" of Subscribe and History.
struct Since {
  bool present = false;
  std::string_view epoch;
  uint64_t offset = 0;
};

struct ClientMessage {
  Type type = Type::Ping;
  std::string_view channel;      // Subscribe, Unsubscribe, Message, History, Presence
  std::string_view content;      // Message (unescaped)
  std::string_view traceparent;  // optional, not yet validated
  std::string_view token;        // Refresh: the new JWT
  Since since;                   // Subscribe (recovery), History
  uint32_t limit = 0;            // History: most messages wanted (0: as many as kept)
  bool has_limit = false;
  Id id;
};

// An Id that outlives the parser's buffer (for replies sent later).
struct OwnedId {
  Id id;
  std::string storage;
  OwnedId() = default;
  explicit OwnedId(const Id& from) : id(from) {
    if (from.kind == Id::Kind::String) {
      storage.assign(from.str);
      id.str = storage;
    }
  }
  OwnedId(const OwnedId& o) : OwnedId(o.id) {}
  OwnedId& operator=(const OwnedId& o) {
    if (this != &o) {
      id = o.id;
      storage.assign(o.id.kind == Id::Kind::String ? o.id.str : std::string_view());
      if (id.kind == Id::Kind::String) id.str = storage;
    }
    return *this;
  }
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

// Appends ,"id":<id> (nothing when the id is absent), as every reply echoes it.
void append_id_field(Buffer& out, const Id& id);

// Presence (docs/PRESENCE.md). A Join or Leave notice:
// {"type":"Join"|"Leave","channel":C,"user":U,"connection_id":N} (+ "node" in a cluster).
void encode_member_event(Buffer& out, bool join, std::string_view channel, std::string_view user,
                         uint64_t connection_id, std::string_view node = {});
// The members of a Presence answer, as JSON object members:
// "count":N,"users":U,"clients":[{"connection_id":..,"user":..(,"node":..)},...].
// Sorts `clients` (by node, then id); lists at most `list_max`; the counts are exact.
struct PresenceClient {
  std::string_view node;  // empty: standalone
  uint64_t connection_id = 0;
  std::string_view user;
};
void encode_presence_members(Buffer& out, std::vector<PresenceClient>& clients, size_t list_max);

// Encoders: append the JSON payload (no frame header).
void encode_pong(Buffer& out, const Id& id);
// recovered: -1 = not asked (no "since"), 0 = false, 1 = true.
void encode_subscribed(Buffer& out, std::string_view channel, const Id& id,
                       std::string_view epoch, uint64_t offset, int recovered = -1);
void encode_unsubscribed(Buffer& out, std::string_view channel, const Id& id);
// {"type":"Refresh","expires":E}: the server asks for a new token before E.
void encode_refresh_request(Buffer& out, int64_t expires_unix_s);
// {"type":"Refreshed","expires":E}: the client's new token is in use.
void encode_refreshed(Buffer& out, int64_t expires_unix_s, const Id& id);
void encode_error(Buffer& out, ErrorCode code, std::string_view message, const Id& id);
// {"type":"Message","channel":C,"content":S,"offset":N}: the offset last, so
// the channel and content keep their place for clients that read them fast.
// With a `traceparent` (channel rule propagate): ,"traceparent":"..." last.
void encode_message(Buffer& out, std::string_view channel, std::string_view content,
                    uint64_t offset, std::string_view traceparent = {});
void encode_published(Buffer& out, std::string_view channel, const Id& id,
                      std::string_view epoch, uint64_t offset);
// Positions [from, to] of `epoch` will not be delivered ("reset": the
// stream's earlier state was lost, `previous_epoch` is the one it replaced).
void encode_gap(Buffer& out, std::string_view channel, std::string_view epoch, uint64_t from,
                uint64_t to, std::string_view previous_epoch = {});
// History: begin, then one entry per message, then end.
void encode_history_begin(Buffer& out, std::string_view channel, std::string_view epoch,
                          uint64_t offset, int recovered);
void encode_history_entry(Buffer& out, bool first, uint64_t offset, std::string_view content);
void encode_history_end(Buffer& out, const Id& id);

}  // namespace wstrace::protocol
