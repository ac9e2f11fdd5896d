#include "protocol/api.h"

#include <simdjson.h>

#include "protocol/protocol.h"

namespace wstrace::protocol {
namespace {

constexpr std::string_view kNames[] = {"publish",     "broadcast", "disconnect", "subscribe",
                                       "unsubscribe", "history",   "channels",   "info",
                                       "presence"};
static_assert(sizeof kNames / sizeof kNames[0] == kApiMethodCount);

bool fail(ApiError& err, std::string_view code, std::string message, int status = 400) {
  err.status = status;
  err.code = code;
  err.message = std::move(message);
  return false;
}

bool get_string(simdjson::dom::element v, std::string_view key, std::string& out, ApiError& err) {
  std::string_view s;
  if (v.get_string().get(s) != simdjson::SUCCESS) {
    return fail(err, "invalid_json", "field '" + std::string(key) + "' must be a string");
  }
  out.assign(s);
  return true;
}

bool check_channel(const std::string& ch, std::string_view field, ApiError& err) {
  if (valid_channel(ch)) return true;
  return fail(err, "invalid_channel",
              std::string(field) + ": channel names are 1-128 bytes of A-Z a-z 0-9 _ . : / -");
}

}  // namespace

std::string_view api_method_name(ApiMethod m) { return kNames[static_cast<int>(m)]; }

bool api_method_from_path(std::string_view name, ApiMethod& out) {
  for (int i = 0; i < kApiMethodCount; ++i) {
    if (kNames[i] == name) {
      out = static_cast<ApiMethod>(i);
      return true;
    }
  }
  return false;
}

bool parse_api_request(ApiMethod method, std::string_view body, const ApiLimits& limits,
                       ApiRequest& out, ApiError& err) {
  out = ApiRequest{};
  out.method = method;
  // Only leading/trailing whitespace: an empty body is an empty object.
  size_t b = 0, e = body.size();
  while (b < e && (body[b] == ' ' || body[b] == '\n' || body[b] == '\r' || body[b] == '\t')) ++b;
  while (e > b && (body[e - 1] == ' ' || body[e - 1] == '\n' || body[e - 1] == '\r' ||
                   body[e - 1] == '\t')) {
    --e;
  }
  const std::string_view text = b == e ? std::string_view("{}") : body.substr(b, e - b);
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(text.data(), text.size(), true).get(root) != simdjson::SUCCESS) {
    return fail(err, "invalid_json", "the request body is not valid JSON");
  }
  simdjson::dom::object obj;
  if (root.get_object().get(obj) != simdjson::SUCCESS) {
    return fail(err, "invalid_json", "the request body must be a JSON object");
  }
  bool has_channel = false, has_content = false, has_channels = false, has_user = false;
  bool has_connection = false;
  for (auto field : obj) {
    const std::string_view key = field.key;
    const simdjson::dom::element v = field.value;
    if (key == "channel") {
      if (!get_string(v, key, out.channel, err)) return false;
      has_channel = true;
    } else if (key == "content") {
      if (!get_string(v, key, out.content, err)) return false;
      has_content = true;
    } else if (key == "channels" && method == ApiMethod::Broadcast) {
      simdjson::dom::array arr;
      if (v.get_array().get(arr) != simdjson::SUCCESS) {
        return fail(err, "invalid_json", "field 'channels' must be an array of strings");
      }
      for (simdjson::dom::element c : arr) {
        if (out.channels.size() >= limits.max_channels) {
          return fail(err, "too_many_channels",
                      "at most " + std::to_string(limits.max_channels) +
                          " channels in one broadcast");
        }
        std::string name;
        if (!get_string(c, "channels[]", name, err)) return false;
        out.channels.push_back(std::move(name));
      }
      has_channels = true;
    } else if (key == "user") {
      if (!get_string(v, key, out.user, err)) return false;
      has_user = true;
    } else if (key == "connection_id") {
      if (v.get_uint64().get(out.connection_id) != simdjson::SUCCESS || out.connection_id == 0) {
        return fail(err, "invalid_json", "field 'connection_id' must be a positive integer");
      }
      has_connection = true;
    } else if (key == "code") {
      uint64_t code = 0;
      if (v.get_uint64().get(code) != simdjson::SUCCESS ||
          !(code == 1000 || (code >= 3000 && code <= 4999))) {
        return fail(err, "invalid_json",
                    "field 'code' must be a Close code a server may send: 1000 or 3000-4999");
      }
      out.code = static_cast<uint16_t>(code);
    } else if (key == "reason") {
      if (!get_string(v, key, out.reason, err)) return false;
      if (out.reason.size() > 123) {
        return fail(err, "invalid_json", "field 'reason' is longer than 123 bytes (a Close frame's limit)");
      }
    } else if (key == "since") {
      simdjson::dom::object s;
      if (v.get_object().get(s) != simdjson::SUCCESS) {
        return fail(err, "invalid_json", "field 'since' must be an object {\"epoch\":...,\"offset\":...}");
      }
      bool he = false, ho = false;
      for (auto f : s) {
        if (f.key == "epoch") {
          if (!get_string(f.value, "since.epoch", out.epoch, err)) return false;
          he = true;
        } else if (f.key == "offset") {
          if (f.value.get_uint64().get(out.since) != simdjson::SUCCESS) {
            return fail(err, "invalid_json", "field 'since.offset' must be a non-negative integer");
          }
          ho = true;
        }
      }
      if (!he || !ho) return fail(err, "invalid_json", "field 'since' needs 'epoch' and 'offset'");
      out.has_since = true;
    } else if (key == "limit") {
      uint64_t n = 0;
      if (v.get_uint64().get(n) != simdjson::SUCCESS) {
        return fail(err, "invalid_json", "field 'limit' must be a non-negative integer");
      }
      out.limit = n > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(n);
    }
    // Other fields are ignored, so backends may add their own.
  }

  auto need = [&](bool has, std::string_view name) {
    return has || fail(err, "missing_field", "field '" + std::string(name) + "' is required");
  };
  switch (method) {
    case ApiMethod::Publish:
      if (!need(has_channel, "channel") || !need(has_content, "content")) return false;
      if (!check_channel(out.channel, "channel", err)) return false;
      break;
    case ApiMethod::Broadcast:
      if (!need(has_channels, "channels") || !need(has_content, "content")) return false;
      if (out.channels.empty()) return fail(err, "missing_field", "field 'channels' is empty");
      for (const auto& c : out.channels) {
        if (!check_channel(c, "channels", err)) return false;
      }
      break;
    case ApiMethod::Disconnect:
      if (has_user == has_connection) {
        return fail(err, "missing_field", "give exactly one of 'user' and 'connection_id'");
      }
      if (has_user && out.user.empty()) return fail(err, "missing_field", "field 'user' is empty");
      break;
    case ApiMethod::Subscribe:
    case ApiMethod::Unsubscribe:
      if (!need(has_user, "user") || !need(has_channel, "channel")) return false;
      if (out.user.empty()) return fail(err, "missing_field", "field 'user' is empty");
      if (!check_channel(out.channel, "channel", err)) return false;
      break;
    case ApiMethod::History:
    case ApiMethod::Presence:
      if (!need(has_channel, "channel")) return false;
      if (!check_channel(out.channel, "channel", err)) return false;
      break;
    case ApiMethod::Channels:
    case ApiMethod::Info:
      break;
  }
  if (has_content && out.content.size() > limits.max_content) {
    return fail(err, "message_too_large",
                "content larger than --max-content-size (" + std::to_string(limits.max_content) +
                    " bytes)",
                413);
  }
  return true;
}

}  // namespace wstrace::protocol
