// libFuzzer target: the client protocol parser. Whatever it accepts or
// refuses, the reply the server would send is valid JSON; an accepted
// Message re-encoded as the broadcast frame parses back to the same fields.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "protocol/json_writer.h"
#include "protocol/protocol.h"
#include "util/buffer.h"

using namespace wstrace;
using namespace wstrace::protocol;

namespace {

void check_json(const Buffer& b) {
  static simdjson::dom::parser p;
  simdjson::dom::element e;
  FUZZ_CHECK(p.parse(b.data(), b.size(), false).get(e) == simdjson::SUCCESS);
  FUZZ_CHECK(e.is_object());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Parser parser(1 << 16);
  if (size > (1 << 16)) return 0;
  Buffer in;
  in.append(data, size);  // with the padding simdjson reads
  ClientMessage m;
  ParseError err{};
  Buffer reply;
  if (!parser.parse(in.data(), in.size(), m, err)) {
    FUZZ_CHECK(static_cast<int>(err.code) < kErrorCodeCount);
    FUZZ_CHECK(!err.message.empty());
    encode_error(reply, err.code, err.message, err.id);
    check_json(reply);
    return 0;
  }
  switch (m.type) {
    case Type::Ping:
      encode_pong(reply, m.id);
      break;
    case Type::Subscribe:
      FUZZ_CHECK(valid_channel(m.channel));
      encode_subscribed(reply, m.channel, m.id, "e1", 7, m.since.present ? 1 : -1);
      break;
    case Type::Unsubscribe:
      FUZZ_CHECK(valid_channel(m.channel));
      encode_unsubscribed(reply, m.channel, m.id);
      break;
    case Type::Message: {
      FUZZ_CHECK(valid_channel(m.channel));
      encode_message(reply, m.channel, m.content, 42);
      const std::string channel(m.channel), content(m.content);
      static Parser again(1 << 18);
      ClientMessage m2;
      ParseError e2{};
      FUZZ_CHECK(again.parse(reply.data(), reply.size(), m2, e2));
      FUZZ_CHECK(m2.type == Type::Message && m2.channel == channel && m2.content == content);
      break;
    }
    case Type::History:
      FUZZ_CHECK(valid_channel(m.channel));
      encode_history_begin(reply, m.channel, "e1", 7, m.since.present ? 1 : -1);
      encode_history_entry(reply, true, 6, m.channel);
      encode_history_end(reply, m.id);
      break;
    case Type::Refresh:
      FUZZ_CHECK(!m.token.empty());
      encode_refreshed(reply, 1700000000, m.id);
      break;
    case Type::Presence: {
      // As the worker answers it (server/presence.cpp).
      FUZZ_CHECK(valid_channel(m.channel));
      static constexpr std::string_view kHead = "{\"type\":\"Presence\",\"channel\":";
      static constexpr std::string_view kBody = ",\"count\":1,\"users\":1,\"clients\":[]";
      reply.append(kHead.data(), kHead.size());
      append_json_string(reply, m.channel);
      reply.append(kBody.data(), kBody.size());
      append_id_field(reply, m.id);
      reply.append("}", 1);
      break;
    }
  }
  check_json(reply);
  return 0;
}
