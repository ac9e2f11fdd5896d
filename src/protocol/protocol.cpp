#include "protocol/protocol.h"

#include <algorithm>
#include <tuple>

#include <simdjson.h>

#include <charconv>
#include <cstdlib>

#include "protocol/json_writer.h"

namespace wstrace::protocol {
namespace {

constexpr std::string_view kTypeNames[] = {"Ping",    "Subscribe", "Unsubscribe", "Message",
                                           "History", "Refresh",   "Presence"};

constexpr std::string_view kErrorNames[] = {
#define WSTRACE_X(e, name) name,
    WSTRACE_ERROR_CODES(WSTRACE_X)
#undef WSTRACE_X
};

constexpr auto kChannelChars = [] {
  struct Table {
    bool ok[256];
  } t{};
  for (int c = 'a'; c <= 'z'; ++c) t.ok[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t.ok[c] = true;
  for (int c = '0'; c <= '9'; ++c) t.ok[c] = true;
  for (char c : std::string_view("_.:/-")) t.ok[static_cast<unsigned char>(c)] = true;
  return t;
}();

void append_literal(Buffer& out, std::string_view s) { out.append(s.data(), s.size()); }

void append_uint(Buffer& out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

// "since": {"epoch": string, "offset": unsigned integer}
bool parse_since(simdjson::dom::element v, Since& out, std::string_view& why) {
  simdjson::dom::object obj;
  if (v.get_object().get(obj) != simdjson::SUCCESS) {
    why = "field 'since' must be an object {\"epoch\":...,\"offset\":...}";
    return false;
  }
  bool has_epoch = false, has_offset = false;
  for (auto f : obj) {
    if (f.key == "epoch") {
      if (f.value.get_string().get(out.epoch) != simdjson::SUCCESS) {
        why = "field 'since.epoch' must be a string";
        return false;
      }
      has_epoch = true;
    } else if (f.key == "offset") {
      if (f.value.get_uint64().get(out.offset) != simdjson::SUCCESS) {
        why = "field 'since.offset' must be a non-negative integer";
        return false;
      }
      has_offset = true;
    }
  }
  if (!has_epoch || !has_offset) {
    why = "field 'since' needs 'epoch' and 'offset'";
    return false;
  }
  out.present = true;
  return true;
}

void append_id(Buffer& out, const Id& id) {
  if (id.kind == Id::Kind::None) return;
  append_literal(out, ",\"id\":");
  char buf[32];
  std::to_chars_result r{};
  switch (id.kind) {
    case Id::Kind::String:
      append_json_string(out, id.str);
      return;
    case Id::Kind::Int:
      r = std::to_chars(buf, buf + sizeof buf, id.i);
      break;
    case Id::Kind::Uint:
      r = std::to_chars(buf, buf + sizeof buf, id.u);
      break;
    case Id::Kind::Double: {
      r = std::to_chars(buf, buf + sizeof buf, id.d);
      // The shortest form of a whole double may have no '.' or exponent
      // (9.8e20 -> "984467440737095122944"): keep it a floating-point literal,
      // or parsers read it as an integer (and reject one past 2^64).
      std::string_view text(buf, static_cast<size_t>(r.ptr - buf));
      if (text.find_first_of(".e") == std::string_view::npos) {
        *r.ptr++ = '.';
        *r.ptr++ = '0';
      }
      break;
    }
    case Id::Kind::None:
      return;
  }
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

}  // namespace

std::string_view type_name(Type t) { return kTypeNames[static_cast<int>(t)]; }
void append_id_field(Buffer& out, const Id& id) { append_id(out, id); }
std::string_view error_code_name(ErrorCode c) { return kErrorNames[static_cast<int>(c)]; }

bool valid_channel(std::string_view name) {
  if (name.empty() || name.size() > kMaxChannelLength) return false;
  for (char c : name) {
    if (!kChannelChars.ok[static_cast<unsigned char>(c)]) return false;
  }
  return true;
}

struct Parser::Impl {
  simdjson::dom::parser dom;
};

Parser::Parser(size_t max_message_size) : impl_(std::make_unique<Impl>()) {
  // Allocate once for the largest message, so parsing never allocates.
  if (impl_->dom.allocate(max_message_size < 4096 ? 4096 : max_message_size) !=
      simdjson::SUCCESS) {
    std::abort();  // out of memory at start-up
  }
}

Parser::~Parser() = default;

bool Parser::parse(const uint8_t* data, size_t len, ClientMessage& out, ParseError& err) {
  using simdjson::dom::element_type;
  err.id = Id{};
  simdjson::dom::element root;
  if (impl_->dom.parse(data, len, false).get(root) != simdjson::SUCCESS) {
    err = {ErrorCode::InvalidJson, "message is not valid JSON", {}};
    return false;
  }
  simdjson::dom::object obj;
  if (root.get_object().get(obj) != simdjson::SUCCESS) {
    err = {ErrorCode::InvalidJson, "message must be a JSON object", {}};
    return false;
  }

  out = ClientMessage{};
  std::string_view type;
  bool has_type = false, has_channel = false, has_content = false;
  for (auto field : obj) {
    std::string_view key = field.key;
    simdjson::dom::element v = field.value;
    if (key == "type") {
      if (v.get_string().get(type) != simdjson::SUCCESS) {
        err = {ErrorCode::InvalidJson, "field 'type' must be a string", {}};
        return false;
      }
      has_type = true;
    } else if (key == "channel") {
      if (v.get_string().get(out.channel) != simdjson::SUCCESS) {
        err = {ErrorCode::InvalidJson, "field 'channel' must be a string", {}};
        return false;
      }
      has_channel = true;
    } else if (key == "content") {
      if (v.get_string().get(out.content) != simdjson::SUCCESS) {
        err = {ErrorCode::InvalidJson, "field 'content' must be a string", {}};
        return false;
      }
      has_content = true;
    } else if (key == "token") {
      if (v.get_string().get(out.token) != simdjson::SUCCESS) {
        err = {ErrorCode::InvalidJson, "field 'token' must be a string", {}};
        return false;
      }
    } else if (key == "traceparent") {
      if (v.get_string().get(out.traceparent) != simdjson::SUCCESS) {
        err = {ErrorCode::InvalidJson, "field 'traceparent' must be a string", {}};
        return false;
      }
    } else if (key == "since") {
      std::string_view why;
      if (!parse_since(v, out.since, why)) {
        err = {ErrorCode::InvalidJson, why, {}};
        return false;
      }
    } else if (key == "limit") {
      uint64_t n = 0;
      if (v.get_uint64().get(n) != simdjson::SUCCESS) {
        err = {ErrorCode::InvalidJson, "field 'limit' must be a non-negative integer", {}};
        return false;
      }
      out.limit = n > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(n);
      out.has_limit = true;
    } else if (key == "id") {
      switch (v.type()) {
        case element_type::STRING:
          out.id.kind = Id::Kind::String;
          if (v.get_string().get(out.id.str) != simdjson::SUCCESS) out.id.kind = Id::Kind::None;
          break;
        case element_type::INT64:
          out.id.kind = Id::Kind::Int;
          if (v.get_int64().get(out.id.i) != simdjson::SUCCESS) out.id.kind = Id::Kind::None;
          break;
        case element_type::UINT64:
          out.id.kind = Id::Kind::Uint;
          if (v.get_uint64().get(out.id.u) != simdjson::SUCCESS) out.id.kind = Id::Kind::None;
          break;
        case element_type::DOUBLE:
          out.id.kind = Id::Kind::Double;
          if (v.get_double().get(out.id.d) != simdjson::SUCCESS) out.id.kind = Id::Kind::None;
          break;
        default:
          err = {ErrorCode::InvalidJson, "field 'id' must be a string or a number", {}};
          return false;
      }
    }
    // Other fields are ignored, so clients may add their own.
  }
  err.id = out.id;
  if (!has_type) {
    err.code = ErrorCode::MissingField;
    err.message = "field 'type' is required";
    return false;
  }
  if (type == "Ping") {
    out.type = Type::Ping;
    return true;
  }
  if (type == "Refresh") {
    out.type = Type::Refresh;
    if (out.token.empty()) {
      err.code = ErrorCode::MissingField;
      err.message = "field 'token' is required";
      return false;
    }
    return true;
  }
  if (type == "Subscribe") {
    out.type = Type::Subscribe;
  } else if (type == "Unsubscribe") {
    out.type = Type::Unsubscribe;
  } else if (type == "Message") {
    out.type = Type::Message;
  } else if (type == "History") {
    out.type = Type::History;
  } else if (type == "Presence") {
    out.type = Type::Presence;
  } else {
    err.code = ErrorCode::UnknownType;
    err.message =
        "unknown message type (expected Ping, Subscribe, Unsubscribe, Message, History, "
        "Presence or Refresh)";
    return false;
  }
  if (!has_channel) {
    err.code = ErrorCode::MissingField;
    err.message = "field 'channel' is required";
    return false;
  }
  if (!valid_channel(out.channel)) {
    err.code = ErrorCode::InvalidChannel;
    err.message = "channel names are 1-128 bytes of A-Z a-z 0-9 _ . : / -";
    return false;
  }
  if (out.type == Type::Message && !has_content) {
    err.code = ErrorCode::MissingField;
    err.message = "field 'content' is required";
    return false;
  }
  return true;
}

void encode_pong(Buffer& out, const Id& id) {
  append_literal(out, "{\"type\":\"Pong\"");
  append_id(out, id);
  out.push_back('}');
}

void encode_subscribed(Buffer& out, std::string_view channel, const Id& id,
                       std::string_view epoch, uint64_t offset, int recovered) {
  append_literal(out, "{\"type\":\"Subscribed\",\"channel\":");
  append_json_string(out, channel);
  append_literal(out, ",\"epoch\":");
  append_json_string(out, epoch);
  append_literal(out, ",\"offset\":");
  append_uint(out, offset);
  if (recovered >= 0) append_literal(out, recovered ? ",\"recovered\":true" : ",\"recovered\":false");
  append_id(out, id);
  out.push_back('}');
}

void encode_unsubscribed(Buffer& out, std::string_view channel, const Id& id) {
  append_literal(out, "{\"type\":\"Unsubscribed\",\"channel\":");
  append_json_string(out, channel);
  append_id(out, id);
  out.push_back('}');
}

void encode_refresh_request(Buffer& out, int64_t expires_unix_s) {
  append_literal(out, "{\"type\":\"Refresh\",\"expires\":");
  append_uint(out, static_cast<uint64_t>(expires_unix_s < 0 ? 0 : expires_unix_s));
  out.push_back('}');
}

void encode_refreshed(Buffer& out, int64_t expires_unix_s, const Id& id) {
  append_literal(out, "{\"type\":\"Refreshed\",\"expires\":");
  append_uint(out, static_cast<uint64_t>(expires_unix_s < 0 ? 0 : expires_unix_s));
  append_id(out, id);
  out.push_back('}');
}

void encode_error(Buffer& out, ErrorCode code, std::string_view message, const Id& id) {
  append_literal(out, "{\"type\":\"Error\",\"code\":\"");
  append_literal(out, error_code_name(code));
  append_literal(out, "\",\"message\":");
  append_json_string(out, message);
  append_id(out, id);
  out.push_back('}');
}

void encode_member_event(Buffer& out, bool join, std::string_view channel, std::string_view user,
                         uint64_t connection_id, std::string_view node) {
  append_literal(out, join ? "{\"type\":\"Join\",\"channel\":" : "{\"type\":\"Leave\",\"channel\":");
  append_json_string(out, channel);
  append_literal(out, ",\"user\":");
  append_json_string(out, user);
  append_literal(out, ",\"connection_id\":");
  append_uint(out, connection_id);
  if (!node.empty()) {
    append_literal(out, ",\"node\":");
    append_json_string(out, node);
  }
  out.push_back('}');
}

void encode_presence_members(Buffer& out, std::vector<PresenceClient>& clients, size_t list_max) {
  std::sort(clients.begin(), clients.end(), [](const PresenceClient& a, const PresenceClient& b) {
    return std::tie(a.node, a.connection_id) < std::tie(b.node, b.connection_id);
  });
  std::vector<std::string_view> users;
  for (const PresenceClient& c : clients) {
    if (!c.user.empty()) users.push_back(c.user);
  }
  std::sort(users.begin(), users.end());
  const size_t distinct =
      static_cast<size_t>(std::unique(users.begin(), users.end()) - users.begin());
  append_literal(out, "\"count\":");
  append_uint(out, clients.size());
  append_literal(out, ",\"users\":");
  append_uint(out, distinct);
  append_literal(out, ",\"clients\":[");
  for (size_t i = 0; i < clients.size() && i < list_max; ++i) {
    append_literal(out, i ? ",{\"connection_id\":" : "{\"connection_id\":");
    append_uint(out, clients[i].connection_id);
    append_literal(out, ",\"user\":");
    append_json_string(out, clients[i].user);
    if (!clients[i].node.empty()) {
      append_literal(out, ",\"node\":");
      append_json_string(out, clients[i].node);
    }
    out.push_back('}');
  }
  out.push_back(']');
}

void encode_message(Buffer& out, std::string_view channel, std::string_view content,
                    uint64_t offset, std::string_view traceparent) {
  append_literal(out, "{\"type\":\"Message\",\"channel\":");
  append_json_string(out, channel);
  append_literal(out, ",\"content\":");
  append_json_string(out, content);
  append_literal(out, ",\"offset\":");
  append_uint(out, offset);
  if (!traceparent.empty()) {
    append_literal(out, ",\"traceparent\":\"");
    append_literal(out, traceparent);
    out.push_back('"');
  }
  out.push_back('}');
}

void encode_published(Buffer& out, std::string_view channel, const Id& id,
                      std::string_view epoch, uint64_t offset) {
  append_literal(out, "{\"type\":\"Published\",\"channel\":");
  append_json_string(out, channel);
  append_literal(out, ",\"epoch\":");
  append_json_string(out, epoch);
  append_literal(out, ",\"offset\":");
  append_uint(out, offset);
  append_id(out, id);
  out.push_back('}');
}

void encode_gap(Buffer& out, std::string_view channel, std::string_view epoch, uint64_t from,
                uint64_t to, std::string_view previous_epoch) {
  append_literal(out, "{\"type\":\"Gap\",\"channel\":");
  append_json_string(out, channel);
  append_literal(out, ",\"epoch\":");
  append_json_string(out, epoch);
  append_literal(out, ",\"from\":");
  append_uint(out, from);
  append_literal(out, ",\"to\":");
  append_uint(out, to);
  if (!previous_epoch.empty()) {
    append_literal(out, ",\"reset\":true,\"previous_epoch\":");
    append_json_string(out, previous_epoch);
  }
  out.push_back('}');
}

void encode_history_begin(Buffer& out, std::string_view channel, std::string_view epoch,
                          uint64_t offset, int recovered) {
  append_literal(out, "{\"type\":\"History\",\"channel\":");
  append_json_string(out, channel);
  append_literal(out, ",\"epoch\":");
  append_json_string(out, epoch);
  append_literal(out, ",\"offset\":");
  append_uint(out, offset);
  if (recovered >= 0) append_literal(out, recovered ? ",\"recovered\":true" : ",\"recovered\":false");
  append_literal(out, ",\"messages\":[");
}

void encode_history_entry(Buffer& out, bool first, uint64_t offset, std::string_view content) {
  append_literal(out, first ? "{\"offset\":" : ",{\"offset\":");
  append_uint(out, offset);
  append_literal(out, ",\"content\":");
  append_json_string(out, content);
  out.push_back('}');
}

void encode_history_end(Buffer& out, const Id& id) {
  out.push_back(']');
  append_id(out, id);
  out.push_back('}');
}

}  // namespace wstrace::protocol
