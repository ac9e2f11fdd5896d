// Every metric the server records, declared once (docs/TELEMETRY.md). Series
// indexes below match the order of each instrument's label sets.
#pragma once

#include "telemetry/metrics.h"

namespace wstrace::server {

// websocket.connections{outcome, reason}
enum class ConnOutcome : uint32_t {
  Accepted,
  BadRequest,
  Version,
  NotFound,
  Origin,
  HeadersTooLarge,
  Capacity,
  HandshakeTimeout,
  FdLimit,
  Tls,
  PerIpConnections,
  PerIpRate,
  Count
};

// websocket.messages.received{type}
enum class InType : uint32_t {
  Ping, Subscribe, Unsubscribe, Message, History, Refresh, Presence, Invalid, Binary, Echo, Count
};
// websocket.messages.sent{type}
enum class OutType : uint32_t {
  Pong, Subscribed, Unsubscribed, Message, Error, Echo, History, Published, Gap, Refresh,
  Refreshed, Presence, Join, Leave, Count
};
// websocket.errors{error.type}
enum class ErrorKind : uint32_t {
  Protocol, InvalidUtf8, MessageTooBig, Compression, Client, Socket, Internal, Count
};
// websocket.messages.dropped{reason}
enum class DropReason : uint32_t { SlowConsumer, RateLimited, Closing, Lost, Unavailable, Count };

inline const std::vector<telemetry::LabelSet>& conn_outcome_series() {
  static const std::vector<telemetry::LabelSet> s = {
      {{"outcome", "accepted"}},
      {{"outcome", "rejected"}, {"reason", "bad_request"}},
      {{"outcome", "rejected"}, {"reason", "version"}},
      {{"outcome", "rejected"}, {"reason", "not_found"}},
      {{"outcome", "rejected"}, {"reason", "origin"}},
      {{"outcome", "rejected"}, {"reason", "headers_too_large"}},
      {{"outcome", "rejected"}, {"reason", "capacity"}},
      {{"outcome", "rejected"}, {"reason", "handshake_timeout"}},
      {{"outcome", "rejected"}, {"reason", "fd_limit"}},
      {{"outcome", "rejected"}, {"reason", "tls"}},
      {{"outcome", "rejected"}, {"reason", "per_ip_connections"}},
      {{"outcome", "rejected"}, {"reason", "per_ip_rate"}},
  };
  return s;
}

// websocket.auth.failures{reason}: auth::error_code_name, and "other_user"
// (a Refresh with a token for someone else).
inline const std::vector<const char*>& auth_failure_reasons() {
  static const std::vector<const char*> r = {
      "malformed",   "bad_signature", "unsupported_algorithm", "algorithm_mismatch",
      "unknown_kid", "expired",       "not_yet_valid",         "wrong_audience",
      "wrong_issuer", "bad_claim",    "other_user"};
  return r;
}
inline std::vector<telemetry::LabelSet> auth_failure_series_list() {
  std::vector<telemetry::LabelSet> out;
  for (const char* r : auth_failure_reasons()) out.push_back({{"reason", r}});
  return out;
}
inline uint32_t auth_failure_series(std::string_view code) {
  const auto& r = auth_failure_reasons();
  for (uint32_t i = 0; i < r.size(); ++i) {
    if (code == r[i]) return i;
  }
  return 0;
}

// websocket.tls.handshakes{outcome, resumed | reason}: 0 full, 1 resumed,
// then the failures by the reason net::TlsError gives.
inline const std::vector<telemetry::LabelSet>& tls_handshake_series() {
  static const std::vector<telemetry::LabelSet> s = {
      {{"outcome", "ok"}, {"resumed", "false"}},
      {{"outcome", "ok"}, {"resumed", "true"}},
      {{"outcome", "failed"}, {"reason", "protocol_version"}},
      {{"outcome", "failed"}, {"reason", "no_shared_cipher"}},
      {{"outcome", "failed"}, {"reason", "http_request"}},
      {{"outcome", "failed"}, {"reason", "bad_record"}},
      {{"outcome", "failed"}, {"reason", "eof"}},
      {{"outcome", "failed"}, {"reason", "alert"}},
      {{"outcome", "failed"}, {"reason", "other"}},
  };
  return s;
}
inline uint32_t tls_failure_series(std::string_view reason) {
  const auto& s = tls_handshake_series();
  for (uint32_t i = 2; i < s.size(); ++i) {
    if (s[i][1].second == reason) return i;
  }
  return static_cast<uint32_t>(s.size() - 1);
}

inline std::vector<telemetry::LabelSet> one_label(const char* key,
                                                  std::initializer_list<const char*> values) {
  std::vector<telemetry::LabelSet> out;
  for (const char* v : values) out.push_back({{key, v}});
  return out;
}

// websocket.api.requests{method, outcome}: method-major, 4 outcomes each
// (index = method * 4 + outcome), methods in protocol::ApiMethod's order.
inline std::vector<telemetry::LabelSet> api_request_series() {
  std::vector<telemetry::LabelSet> out;
  for (const char* m : {"publish", "broadcast", "disconnect", "subscribe", "unsubscribe",
                        "history", "channels", "info", "presence"}) {
    for (const char* o : {"ok", "client_error", "unauthorized", "server_error"}) {
      out.push_back({{"method", m}, {"outcome", o}});
    }
  }
  return out;
}

inline std::vector<double> latency_bounds() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,    5,    10};
}

#define WSTRACE_SERVER_METRICS(M)                                                                 \
  M(UpDownCounter, connections_active, "websocket.connections.active",                            \
    "Open WebSocket connections", "{connection}")                                                 \
  M(Counter, connections, "websocket.connections",                                                \
    "Connection attempts by outcome (accepted, or rejected with a reason)", "{connection}",       \
    conn_outcome_series())                                                                        \
  M(Histogram, connection_duration, "websocket.connection.duration",                              \
    "How long WebSocket connections lasted", "s",                                                 \
    std::vector<double>{0.1, 1, 5, 30, 60, 300, 900, 3600, 14400, 86400})                         \
  M(Counter, messages_received, "websocket.messages.received", "Messages received from clients",  \
    "{message}",                                                                                  \
    one_label("type", {"Ping", "Subscribe", "Unsubscribe", "Message", "History", "Refresh",      \
                       "Presence", "invalid", "binary", "echo"}))                                 \
  M(Counter, messages_sent, "websocket.messages.sent", "Messages sent to clients", "{message}",    \
    one_label("type", {"Pong", "Subscribed", "Unsubscribed", "Message", "Error", "echo",          \
                       "History", "Published", "Gap", "Refresh", "Refreshed", "Presence",         \
                       "Join", "Leave"}))                                                         \
  M(Counter, bytes_received, "websocket.bytes.received", "Bytes read from client sockets", "By")  \
  M(Counter, bytes_sent, "websocket.bytes.sent", "Bytes of frames sent to clients", "By")         \
  M(Counter, channel_subscriptions, "websocket.channel.subscriptions",                            \
    "Subscribe operations that added a subscription", "{subscription}")                           \
  M(UpDownCounter, subscriptions_active, "websocket.subscriptions.active",                        \
    "Current subscriptions (connection, channel pairs)", "{subscription}")                        \
  M(Counter, messages_broadcasted, "websocket.messages.broadcasted",                              \
    "Messages published by clients of this node", "{message}")                                    \
  M(Histogram, broadcast_recipients, "websocket.broadcast.recipients",                            \
    "Local subscribers that received each publication", "{connection}",                           \
    std::vector<double>{0, 1, 10, 100, 1000, 10000, 100000})                                      \
  M(Histogram, delivery_latency, "websocket.delivery.latency",                                    \
    "From a publication's arrival at the publishing node to its frame written to a subscriber",   \
    "s", latency_bounds())                                                                        \
  M(Histogram, heartbeat_rtt, "websocket.heartbeat.rtt", "Ping to Pong round trip", "s",          \
    latency_bounds())                                                                             \
  M(Counter, heartbeat_timeouts, "websocket.heartbeat.timeouts",                                  \
    "Connections closed for silence (4408)", "{connection}")                                      \
  M(Counter, slow_consumer_disconnects, "websocket.slow_consumer.disconnects",                    \
    "Connections closed for too much queued output (4429)", "{connection}")                       \
  M(Counter, errors, "websocket.errors", "Errors by kind", "{error}",                             \
    one_label("error.type", {"protocol", "invalid_utf8", "message_too_big", "compression",        \
                             "client", "socket", "internal"}))                                    \
  M(Counter, messages_dropped, "websocket.messages.dropped",                                      \
    "Messages not delivered, by reason", "{message}",                                             \
    one_label("reason", {"slow_consumer", "rate_limited", "closing", "lost", "unavailable"}))     \
  M(Counter, tls_handshakes, "websocket.tls.handshakes",                                         \
    "TLS handshakes (--tls-cert), by outcome: resumed sessions, or why one failed", "{handshake}",\
    tls_handshake_series())                                                                       \
  M(Counter, permission_refusals, "websocket.permission.refusals",                                \
    "Subscribe, History and Message refused by the channel rules or the token", "{request}",      \
    one_label("error.type", {"unauthorized", "forbidden"}))                                       \
  M(Counter, auth_failures, "websocket.auth.failures",                                            \
    "Tokens refused (at the upgrade or in a Refresh), by reason", "{token}",                      \
    auth_failure_series_list())                                                                   \
  M(Counter, token_refreshes, "websocket.auth.refreshes",                                         \
    "Token refreshes: asked for, done, and connections closed with 4401 for want of one",         \
    "{refresh}", one_label("outcome", {"requested", "refreshed", "expired"}))                     \
  M(Counter, recoveries, "websocket.recoveries",                                                  \
    "Subscriptions with a since position, by outcome", "{recovery}",                              \
    one_label("outcome", {"recovered", "not_recovered"}))                                         \
  M(Counter, recovered_messages, "websocket.recovery.messages",                                   \
    "Messages delivered from history to recovering subscribers", "{message}")                     \
  M(Counter, gaps, "websocket.gaps", "Gap notices sent: positions a subscriber was told it lost",  \
    "{message}")                                                                                  \
  M(Counter, api_requests, "websocket.api.requests",                                              \
    "Server API requests (--api), by method and outcome", "{request}", api_request_series())      \
  M(Histogram, api_duration, "websocket.api.request.duration",                                    \
    "From a server API request read to its answer (a publish: once it has its offset)", "s",      \
    latency_bounds())

WSTRACE_METRICS_STRUCT(ServerMetrics, WSTRACE_SERVER_METRICS);

}  // namespace wstrace::server
