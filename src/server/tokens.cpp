// Tokens during a connection. A verified token (at the upgrade, or in a
// client's Refresh) gives the connection its user and the "channels" and
// "publish" claims the channel rules may ask for. A token's exp holds for
// the whole connection: --auth-refresh-before the exp the server sends
// {"type":"Refresh","expires":E}; the client answers
// {"type":"Refresh","token":T} with a token for the same user, answered
// {"type":"Refreshed","expires":E2}; without one by E (plus --auth-leeway)
// the connection is closed with 4401. Each step is an event on the
// connection span.
#include "server/tracing.h"
#include "server/worker.h"
#include "util/clock.h"
#include "util/log.h"

namespace wstrace::server {
namespace {

int64_t now_s() { return static_cast<int64_t>(unix_ns() / 1'000'000'000ull); }

}  // namespace

void Worker::apply_token(Connection& c, AuthResult&& a) {
  c.authenticated = true;
  ConnExtra& e = c.ext();
  e.user_id = std::move(a.user_id);
  e.claim_channels = std::move(a.channels);
  e.claim_publish = std::move(a.publish);
  e.token_exp = a.exp;
  e.refresh_requested = false;
}

bool Worker::refresh(Connection& c, const protocol::ClientMessage& m, protocol::ErrorCode& error) {
  auto keys = node_.auth_keys.load();
  if (!keys) {
    error = protocol::ErrorCode::Unauthorized;
    send_error(c, error, "this server does not use tokens", m.id);
    return true;
  }
  AuthResult a = verify_token(m.token, *keys, cfg_, now_s());
  if (!a.ok) {
    node_.metrics.auth_failures.add(shard_, 1, auth_failure_series(a.code));
    error = protocol::ErrorCode::Unauthorized;
    send_error(c, error, "token refused: " + a.error, m.id);
    return true;
  }
  const std::string_view current = c.extra ? std::string_view(c.extra->user_id) : std::string_view();
  if (c.authenticated && a.user_id != current) {
    node_.metrics.auth_failures.add(shard_, 1, auth_failure_series("other_user"));
    error = protocol::ErrorCode::Forbidden;
    send_error(c, error, "a refreshed token must be for the same user", m.id);
    return true;
  }
  const int64_t exp = a.exp;
  apply_token(c, std::move(a));
  node_.metrics.token_refreshes.add(shard_, 1, 1);
  trace_event(*this, c, "websocket.token.refreshed", {{"websocket.token.expires", exp}});
  reply_.clear();
  protocol::encode_refreshed(reply_, exp, m.id);
  send_reply(c, OutType::Refreshed);
  schedule_heartbeat(c);
  return false;
}

uint32_t Worker::token_due_tick(const Connection& c) const {
  if (!c.extra || c.extra->token_exp <= 0) return 0;
  const ConnExtra& e = *c.extra;
  const int64_t leeway = static_cast<int64_t>(cfg_.auth_leeway_ns / 1'000'000'000ull);
  const int64_t before = static_cast<int64_t>(cfg_.auth_refresh_before_ns / 1'000'000'000ull);
  const int64_t at = e.refresh_requested ? e.token_exp + leeway : e.token_exp - before;
  const int64_t wait_ns = (at - now_s()) * 1'000'000'000ll;
  const uint32_t ticks =
      wait_ns <= 0 ? 1
                   : static_cast<uint32_t>(std::min<int64_t>(
                         (wait_ns + static_cast<int64_t>(wheel_.tick_ns()) - 1) /
                             static_cast<int64_t>(wheel_.tick_ns()),
                         1 << 30));
  return wheel_.current() + ticks;
}

bool Worker::check_token(Connection& c) {
  if (!c.extra || c.extra->token_exp <= 0) return false;
  ConnExtra& e = *c.extra;
  const int64_t now = now_s();
  const int64_t leeway = static_cast<int64_t>(cfg_.auth_leeway_ns / 1'000'000'000ull);
  const int64_t before = static_cast<int64_t>(cfg_.auth_refresh_before_ns / 1'000'000'000ull);
  if (now >= e.token_exp + leeway) {
    node_.metrics.token_refreshes.add(shard_, 1, 2);
    trace_event(*this, c, "websocket.token.expired", {{"websocket.token.expires", e.token_exp}});
    auto scope = conn_log_scope(c);
    WS_LOG(Info, "token expired without a refresh, closing", {"id", c.id}, {"user", e.user_id});
    close(c, ws::close_code::kTokenExpired, "token expired", Initiator::Server, true);
    return true;
  }
  if (!e.refresh_requested && now >= e.token_exp - before) {
    e.refresh_requested = true;
    node_.metrics.token_refreshes.add(shard_, 1, 0);
    trace_event(*this, c, "websocket.token.refresh_requested",
                {{"websocket.token.expires", e.token_exp}});
    reply_.clear();
    protocol::encode_refresh_request(reply_, e.token_exp);
    send_frame(c, pubsub::Frame::make(ws::Opcode::Text, reply_.data(), reply_.size()),
               OutType::Refresh);
  }
  return false;
}

}  // namespace wstrace::server
