// The client commands of /ws (JSON in text frames): parsing and tracing of
// each inbound message, the limits every command passes (rate, auth), then
// one case per command. Each family has its file: subscriptions.cpp
// (Subscribe, Unsubscribe, recovery), history.cpp (History), fanout.cpp
// (Message). Ping and /echo are answered here.
#include <algorithm>
#include <optional>

#include "server/tracing.h"
#include "server/worker.h"
#include "util/clock.h"
#include "util/log.h"

namespace wstrace::server {

void Worker::on_text(Connection& c, uint8_t* data, size_t len) {
  const bool traced = tracer_->enabled();
  const uint64_t start = traced ? unix_ns() : 0;
  protocol::ClientMessage m;
  protocol::ParseError err;
  if (!parser_.parse(data, len, m, err)) {
    node_.metrics.messages_received.add(shard_, 1, static_cast<uint32_t>(InType::Invalid));
    if (traced) handle_ = begin_handle(*this, c, {}, start);
    send_error(c, err.code, err.message, err.id);
    if (traced) end_handle(*this, c, handle_, "invalid", {}, len, protocol::error_code_name(err.code));
    handle_ = {};
    return;
  }
  node_.metrics.messages_received.add(shard_, 1, static_cast<uint32_t>(m.type));
  if (traced) handle_ = begin_handle(*this, c, m.traceparent, start);
  // Lines logged while the message is handled carry its trace and span ids,
  // sampled or not: an unsampled trace still has ids to look for upstream.
  std::optional<log::ScopedLogSpan> log_span;
  if (handle_.valid()) log_span.emplace(handle_.trace_id.bytes.data(), handle_.span_id.bytes.data());
  protocol::ErrorCode error{};
  bool failed = handle_message(c, m, error);
  if (traced) {
    end_handle(*this, c, handle_, protocol::type_name(m.type), m.channel, len,
               failed ? protocol::error_code_name(error) : std::string_view{});
  }
  handle_ = {};
}

void Worker::on_binary(Connection& c, size_t len) {
  node_.metrics.messages_received.add(shard_, 1, static_cast<uint32_t>(InType::Binary));
  const bool traced = tracer_->enabled();
  if (traced) handle_ = begin_handle(*this, c, {}, unix_ns());
  constexpr protocol::ErrorCode kCode = protocol::ErrorCode::UnsupportedFrame;
  send_error(c, kCode, "binary frames are not supported; send JSON in text frames", {});
  if (traced) end_handle(*this, c, handle_, "binary", {}, len, protocol::error_code_name(kCode));
  handle_ = {};
}

bool Worker::handle_message(Connection& c, const protocol::ClientMessage& m,
                            protocol::ErrorCode& error) {
  auto fail = [&](protocol::ErrorCode code, std::string_view message) {
    error = code;
    send_error(c, code, message, m.id);
    return true;
  };
  if (cfg_.rate_limit > 0) {
    // A token bucket per connection: --rate-limit per second, --rate-burst
    // saved up (the bucket starts full).
    const double rate = cfg_.rate_limit;
    const double burst = cfg_.rate_burst > 0 ? cfg_.rate_burst : cfg_.rate_limit;
    ConnExtra& e = c.ext();  // only with --rate-limit
    if (!e.rate_started) {
      e.rate.reset(burst, loop_.now());
      e.rate_started = true;
    }
    if (!e.rate.take(rate, burst, loop_.now())) {
      node_.metrics.messages_dropped.add(shard_, 1, static_cast<uint32_t>(DropReason::RateLimited));
      return fail(protocol::ErrorCode::RateLimited,
                  "too many messages; the limit is --rate-limit per second (burst --rate-burst)");
    }
  }
  if (m.type == protocol::Type::Subscribe || m.type == protocol::Type::History ||
      m.type == protocol::Type::Message || m.type == protocol::Type::Presence) {
    protocol::ErrorCode code{};
    std::string_view why;
    if (!allowed(c, m.channel, m.type == protocol::Type::Message, code, why)) {
      node_.metrics.permission_refusals.add(shard_, 1,
                                            code == protocol::ErrorCode::Forbidden ? 1u : 0u);
      return fail(code, why);
    }
  }
  switch (m.type) {
    case protocol::Type::Ping:
      reply_.clear();
      protocol::encode_pong(reply_, m.id);
      send_reply(c, OutType::Pong);
      return false;
    case protocol::Type::Subscribe:
      return subscribe(c, m, error);
    case protocol::Type::Unsubscribe:
      return unsubscribe(c, m, error);
    case protocol::Type::History:
      return history(c, m, error);
    case protocol::Type::Presence:
      return presence(c, m, error);
    case protocol::Type::Refresh:
      return refresh(c, m, error);
    case protocol::Type::Message:
      if (m.content.size() > cfg_.max_content_size) {
        return fail(protocol::ErrorCode::MessageTooLarge, "content larger than --max-content-size");
      }
      publish(c, m);
      return false;
  }
  return false;
}

void Worker::on_echo(Connection& c, ws::Opcode op, const uint8_t* data, size_t len) {
  pubsub::Frame* f = nullptr;
  if (c.deflate && len >= pubsub::Publication::kCompressMin) {
    Buffer& out = deflaters_.scratch();
    out.clear();
    if (deflaters_.get(std::max<uint8_t>(9, c.server_window_bits)).compress(data, len, out) &&
        out.size() < len) {
      f = pubsub::Frame::make(op, out.data(), out.size(), true);
    }
  }
  if (f == nullptr) f = pubsub::Frame::make(op, data, len);
  send_frame(c, f, OutType::Echo);
}

}  // namespace wstrace::server
