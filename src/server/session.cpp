// The WebSocket session of a connection: accept, reading, the HTTP upgrade
// (or its rejection), the frame callbacks of the I/O-free receiver, the close
// handshake and the end of a connection.
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "http/request.h"
#include "server/auth.h"
#include "server/tracing.h"
#include "server/tracing.h"
#include "server/worker.h"
#include "util/clock.h"
#include "util/log.h"
#include "ws/handshake.h"

namespace wstrace::server {
namespace {

constexpr size_t kMaxRequestHead = 16 * 1024;  // larger upgrade requests get 431
constexpr int kMaxReadsPerEvent = 4;            // then yield to other connections

// Close frame payload: code + reason, the reason cut at 123 bytes on a
// UTF-8 boundary (§5.5: control payloads are at most 125 bytes).
pubsub::Frame* make_close_frame(uint16_t code, std::string_view reason) {
  uint8_t payload[125];
  size_t n = 0;
  if (code != ws::close_code::kNoStatus) {
    payload[0] = static_cast<uint8_t>(code >> 8);
    payload[1] = static_cast<uint8_t>(code);
    size_t r = std::min<size_t>(reason.size(), 123);
    while (r > 0 && r < reason.size() && (static_cast<uint8_t>(reason[r]) & 0xC0) == 0x80) --r;
    if (r > 0) std::memcpy(payload + 2, reason.data(), r);
    n = 2 + r;
  }
  return pubsub::Frame::make(ws::Opcode::Close, payload, n);
}

}  // namespace

// Glue between the I/O-free receiver and the worker.
struct FrameHandler {
  Worker& w;
  Connection& c;

  void on_message(ws::Opcode op, uint8_t* data, size_t len) {
    if (c.state != ConnState::Open) return;  // data after our Close is ignored (§7.1.4)
    ++c.stats.messages_received;
    if (c.endpoint == static_cast<uint8_t>(ws::Endpoint::Echo)) {
      w.node_.metrics.messages_received.add(w.shard_, 1, static_cast<uint32_t>(InType::Echo));
      w.on_echo(c, op, data, len);
    } else if (op == ws::Opcode::Text) {
      w.on_text(c, data, len);
    } else {
      w.on_binary(c, len);
    }
  }
  void on_ping(const uint8_t* data, size_t len) {
    if (c.state != ConnState::Open) return;
    w.send_control(c, pubsub::Frame::make(ws::Opcode::Pong, data, len));
  }
  void on_pong(const uint8_t* data, size_t len) { w.on_pong(c, data, len); }
  void on_close(uint16_t code, std::string_view reason) { w.on_close_frame(c, code, reason); }
  void on_error(ws::Error e) { w.on_protocol_error(c, e); }
  bool keep_reading() const { return c.state == ConnState::Open || c.state == ConnState::Closing; }
  bool deflate_negotiated() const { return c.deflate; }
  ws::Inflater* inflater() {
    if (c.client_no_context_takeover) return w.shared_inflater_.get();
    ConnExtra& e = c.ext();
    if (!e.inflater) {
      e.inflater = std::make_unique<ws::Inflater>(int{c.client_window_bits});
      w.node_.connection_inflaters.fetch_add(1, std::memory_order_relaxed);
    }
    return e.inflater.get();
  }
  bool inflate_reset() const { return c.client_no_context_takeover; }
  Buffer& scratch() { return w.inflate_buf_; }
  uint64_t max_message_size() const { return w.cfg_.max_message_size; }
};

struct UpgradeInfo {
  const http::Request* request = nullptr;
  ws::HandshakeResult result;
  std::string token;
};
// ---------------------------------------------------------------------------
// Input

void Worker::on_accepted(int fd, const net::Address& peer) {
  // The thread with the fewest sockets takes it (this one on a tie): an even
  // spread whichever thread the kernel woke.
  Worker* target = this;
  size_t least = socket_count();
  for (Worker* w : node_.workers) {
    const size_t n = w->socket_count();
    if (n < least) {
      least = n;
      target = w;
    }
  }
  target->sockets_.fetch_add(1, std::memory_order_relaxed);
  if (target == this) {
    accept(fd, peer);
  } else {
    target->loop_.post([target, fd, peer] { target->accept(fd, peer); });
  }
}

void Worker::accept(int fd, const net::Address& peer) {
  if (shutting_down_) {
    ::close(fd);
    sockets_.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  net::tune_accepted(fd, static_cast<uint32_t>(cfg_.send_buffer));
  Connection* c = alloc_connection(fd);
  const sockaddr* sa = peer.sa();
  if (sa->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(sa);
    std::memcpy(c->peer.addr, &v4->sin_addr, 4);
    c->peer.port = ntohs(v4->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(sa);
    std::memcpy(c->peer.addr, &v6->sin6_addr, 16);
    c->peer.port = ntohs(v6->sin6_port);
  }
  c->peer.family = static_cast<uint8_t>(sa->sa_family);
  c->id = node_.next_connection_id.fetch_add(1, std::memory_order_relaxed);
  c->span.start_unix_ns = unix_ns();
  if (node_.ip_limits) {
    // Refused before any TLS or HTTP work: a flood from one address costs
    // an accept and a close.
    const auto key = IpLimits::key_of(c->peer.addr, c->peer.family);
    const auto verdict = node_.ip_limits->admit(key, loop_.now());
    if (verdict != IpLimits::Verdict::Admitted) {
      const bool too_many = verdict == IpLimits::Verdict::TooManyConnections;
      node_.metrics.connections.add(
          shard_, 1,
          static_cast<uint32_t>(too_many ? ConnOutcome::PerIpConnections : ConnOutcome::PerIpRate));
      const std::string_view why = too_many ? "too many connections from this address"
                                            : "connecting too fast from this address";
      if (!node_.tls.load()) {
        static constexpr std::string_view kBusy =
            "HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nRetry-After: 1\r\n"
            "Content-Type: text/plain\r\nContent-Length: ";
        std::string resp(kBusy);
        resp += std::to_string(why.size() + 1) + "\r\n\r\n" + std::string(why) + "\n";
        [[maybe_unused]] ssize_t n = ::send(fd, resp.data(), resp.size(), MSG_NOSIGNAL);
      }
      trace_upgrade(*this, *c, nullptr, 429, why);
      WS_LOG(Debug, "connection refused by the per-address limits", {"peer", c->peer.to_string()},
             {"reason", why});
      sockets_.fetch_sub(1, std::memory_order_relaxed);
      ::close(fd);
      free_connection(c);
      return;
    }
    c->ip_counted = true;
  }
  if (std::shared_ptr<net::TlsContext> tls = node_.tls.load()) {
    // wss://: the TLS handshake comes first (read() drives it); the session
    // keeps its context even if a reload replaces the node's.
    c->ssl = tls->accept(fd);
    if (c->ssl == nullptr) {
      WS_LOG(Error, "cannot start a TLS session", {"peer", c->peer.to_string()});
      sockets_.fetch_sub(1, std::memory_order_relaxed);
      ::close(fd);
      free_connection(c);
      return;
    }
    c->tls_handshaking = true;
  }
  c->span.start_unix_ns = unix_ns();  // the upgrade span starts at accept
  c->last_activity = wheel_.current();
  int rc = loop_.add(fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, c);
  if (rc != 0) {
    WS_LOG(Error, "cannot watch a new connection", {"errno", -rc});
    finalize(*c);
    return;
  }
  if (cfg_.handshake_timeout_ns > 0) {
    wheel_.schedule(&c->timer, wheel_.tick_after(cfg_.handshake_timeout_ns));
  }
}

void Worker::on_io(Connection& c, uint32_t events) {
  if (c.state == ConnState::Dead) return;
  if (c.tls_handshaking) {
    read(c);  // the TLS handshake wants either direction
    return;
  }
  // A TLS write can wait for the socket to be readable (a TLS 1.3 key
  // update): any edge retries a blocked TLS connection.
  if (c.blocked && ((events & EPOLLOUT) || (c.ssl != nullptr && (events & EPOLLIN)))) {
    c.blocked = false;
    flush(c);
    if (c.state == ConnState::Dead) return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) read(c);
}

bool Worker::tls_handshake(Connection& c) {
  switch (net::tls_handshake(c.ssl)) {
    case net::TlsStep::Again:
      return false;
    case net::TlsStep::Failed: {
      const net::TlsError e = net::tls_error();
      node_.metrics.tls_handshakes.add(shard_, 1, tls_failure_series(e.reason));
      node_.metrics.connections.add(shard_, 1, static_cast<uint32_t>(ConnOutcome::Tls));
      trace_tls_failure(*this, c, e.reason, e.message);
      WS_LOG(Debug, "TLS handshake failed", {"peer", c.peer.to_string()}, {"reason", e.reason},
             {"error", e.message});
      finalize(c);
      return false;
    }
    case net::TlsStep::Done:
      break;
  }
  c.tls_handshaking = false;
  c.kernel_tls = net::tls_kernel_send(c.ssl);
  node_.metrics.tls_handshakes.add(shard_, 1, net::tls_resumed(c.ssl) ? 1u : 0u);
  return true;
}

void Worker::read(Connection& c) {
  if (c.tls_handshaking && !tls_handshake(c)) return;
  for (int i = 0; i < kMaxReadsPerEvent; ++i) {
    if (c.state == ConnState::Dead || c.state == ConnState::Draining) return;
    const bool into_conn = c.has_input();
    uint8_t* dst;
    size_t room;
    if (into_conn) {
      // Continue a partial frame in the connection's own buffer, sized for
      // the whole frame once its header is known.
      room = 16384;
      ws::FrameHeader fh;
      if (c.state != ConnState::Handshake &&
          ws::parse_header(c.in_->data(), c.in_->size(), fh) == ws::HeaderStatus::Ok) {
        uint64_t need = fh.header_size + fh.payload_size;
        if (need > c.in_->size()) room = std::max<size_t>(room, need - c.in_->size());
      }
      dst = c.in_->prepare(room);
    } else {
      dst = read_buf_.data();
      room = read_buf_.capacity();
    }
    ssize_t n = c.ssl ? net::tls_read(c.ssl, dst, room) : ::read(c.fd, dst, room);
    if (n > 0) {
      c.stats.bytes_received += static_cast<uint64_t>(n);
      node_.metrics.bytes_received.add(shard_, static_cast<uint64_t>(n));
      c.last_activity = wheel_.current();
      if (into_conn) {
        c.in_->grow(static_cast<size_t>(n));
        process(c, c.in_->data(), c.in_->size(), true);
      } else {
        process(c, dst, static_cast<size_t>(n), false);
      }
      // Drained for now; the next edge wakes us. (A TLS session may hold
      // decrypted bytes of a record already read: it is drained until
      // OpenSSL says it needs the socket.)
      if (static_cast<size_t>(n) < room && c.ssl == nullptr) return;
      continue;
    }
    if (n == 0) {
      on_eof(c);
      return;
    }
    if (errno == EAGAIN) return;
    if (errno == EINTR) continue;
    socket_error(c, errno);
    return;
  }
  // Still more to read: yield to the other connections, continue next iteration.
  if (!c.in_read_list) {
    c.in_read_list = true;
    read_list_.push_back(&c);
    loop_.wake_soon();
  }
}

void Worker::process(Connection& c, uint8_t* data, size_t len, bool from_conn) {
  size_t used = 0;
  if (c.state == ConnState::Handshake) {
    used = process_handshake(c, data, len);
    if (c.state == ConnState::Handshake) {  // request incomplete: keep it
      if (!from_conn) c.input().append(data, len);
      return;
    }
  }
  if ((c.state == ConnState::Open || c.state == ConnState::Closing) && used < len) {
    FrameHandler h{*this, c};
    uint64_t pending = 0;
    used += c.receiver.feed(data + used, len - used, h, pending);
  }
  if (c.state != ConnState::Open && c.state != ConnState::Closing) {
    // Nothing more will be read from this connection.
    c.release_input();
    return;
  }
  if (from_conn) {
    c.in_->consume(used);
    if (c.in_->empty()) c.release_input();
  } else if (used < len) {
    c.input().append(data + used, len - used);
  }
}

size_t Worker::process_handshake(Connection& c, uint8_t* data, size_t len) {
  http::Request req;
  size_t head = 0;
  auto status = http::parse_request(std::string_view(reinterpret_cast<char*>(data), len),
                                    kMaxRequestHead, req, &head);
  switch (status) {
    case http::ParseStatus::NeedMore:
      return 0;
    case http::ParseStatus::BadRequest:
      reject(c, static_cast<int>(ws::Rejection::BadRequest), "malformed HTTP request");
      return len;
    case http::ParseStatus::HeadersTooLarge:
      reject(c, static_cast<int>(ws::Rejection::TooLarge), "request headers too large");
      return len;
    case http::ParseStatus::Complete:
      break;
  }
  UpgradeInfo info;
  info.request = &req;
  info.result = ws::evaluate_upgrade(req, node_.policy);
  if (info.result.rejection != ws::Rejection::None) {
    reject(c, static_cast<int>(info.result.rejection), info.result.reason, &req);
    return len;
  }
  if (shutting_down_) {
    reject(c, static_cast<int>(ws::Rejection::Capacity), "server is shutting down", &req);
    return len;
  }
  if (node_.max_connections > 0 &&
      node_.websockets.fetch_add(1, std::memory_order_relaxed) >=
          static_cast<int64_t>(node_.max_connections)) {
    node_.websockets.fetch_sub(1, std::memory_order_relaxed);
    reject(c, static_cast<int>(ws::Rejection::Capacity), "server at --max-connections", &req);
    return len;
  }
  if (node_.max_connections == 0) node_.websockets.fetch_add(1, std::memory_order_relaxed);

  if (node_.auth_configured) {
    if (auto q = http::query_param(req.query, "token")) {
      info.token = std::move(*q);
    } else if (auto a = req.header("Authorization"); a && a->size() > 7 &&
                                                    http::iequals(a->substr(0, 7), "Bearer ")) {
      info.token = std::string(a->substr(7));
    }
  }
  upgrade(c, info);
  return head;
}

void Worker::reject(Connection& c, int rejection, std::string_view reason,
                    const http::Request* req) {
  auto r = static_cast<ws::Rejection>(rejection);
  std::string response = ws::rejection_response(r, reason);
  // Best effort: the client may already be gone.
  [[maybe_unused]] ssize_t n = write_some(
      c, reinterpret_cast<const uint8_t*>(response.data()), response.size());
  ConnOutcome outcome = ConnOutcome::BadRequest;
  switch (r) {
    case ws::Rejection::BadRequest: outcome = ConnOutcome::BadRequest; break;
    case ws::Rejection::Version: outcome = ConnOutcome::Version; break;
    case ws::Rejection::NotFound: outcome = ConnOutcome::NotFound; break;
    case ws::Rejection::Origin: outcome = ConnOutcome::Origin; break;
    case ws::Rejection::TooLarge: outcome = ConnOutcome::HeadersTooLarge; break;
    case ws::Rejection::Capacity: outcome = ConnOutcome::Capacity; break;
    case ws::Rejection::Timeout: outcome = ConnOutcome::HandshakeTimeout; break;
    case ws::Rejection::None: break;
  }
  node_.metrics.connections.add(shard_, 1, static_cast<uint32_t>(outcome));
  trace_upgrade(*this, c, req, ws::rejection_status(r), reason);
  WS_LOG(Debug, "upgrade rejected", {"peer", c.peer.to_string()},
         {"status", ws::rejection_status(r)}, {"reason", reason});
  finalize(c);
}

void Worker::upgrade(Connection& c, const UpgradeInfo& info) {
  const auto& r = info.result;
  c.endpoint = static_cast<uint8_t>(r.endpoint);
  if (r.deflate) {
    c.deflate = true;
    node_.deflate_connections.fetch_add(1, std::memory_order_relaxed);
    c.client_no_context_takeover = r.deflate->client_no_context_takeover;
    c.server_window_bits = r.deflate->server_window_bits & 15;
    c.client_window_bits = r.deflate->client_window_bits & 15;
  }
  std::string auth_error;
  if (!info.token.empty()) {
    if (auto keys = node_.auth_keys.load()) {
      AuthResult a = verify_token(info.token, *keys, cfg_, static_cast<int64_t>(unix_ns() / 1'000'000'000ull));
      if (a.ok) {
        apply_token(c, std::move(a));
      } else {
        node_.metrics.auth_failures.add(shard_, 1, auth_failure_series(a.code));
        auth_error = "token refused: " + a.error;
      }
    }
  }
  c.state = ConnState::Open;
  trace_upgrade(*this, c, info.request, 101, {});
  // The 101 goes out at once: a fresh socket takes it whole, so a handshake
  // allocates nothing that outlives it. (Only if it does not fit is it queued.)
  ssize_t sent =
      write_some(c, reinterpret_cast<const uint8_t*>(r.response.data()), r.response.size());
  if (sent != static_cast<ssize_t>(r.response.size())) {
    size_t done = sent > 0 ? static_cast<size_t>(sent) : 0;
    c.out.push(pubsub::Frame::make_raw(std::string_view(r.response).substr(done)));
    schedule_flush(c);
  }
  c.last_activity = c.last_ping = wheel_.current();
  net::TimerWheel::cancel(&c.timer);
  schedule_heartbeat(c);
  node_.metrics.connections.add(shard_, 1, static_cast<uint32_t>(ConnOutcome::Accepted));
  node_.metrics.connections_active.add(shard_, 1);
  auto scope = conn_log_scope(c);
  WS_LOG(Debug, "connection open", {"id", c.id}, {"peer", c.peer.to_string()},
         {"worker", index_}, {"deflate", c.deflate});
  if (!auth_error.empty()) {
    // Browsers cannot see the status of a refused upgrade, but they do see a
    // Close frame's code and reason: so accept, then close with 1008.
    close(c, ws::close_code::kPolicy, auth_error, Initiator::Server, true);
  }
}

void Worker::on_pong(Connection& c, const uint8_t* data, size_t len) {
  // Our Pings carry their send time (8 bytes, monotonic ns); an unsolicited
  // Pong or one for another payload is just activity.
  if (len != 8) return;
  uint64_t sent = 0;
  for (size_t i = 0; i < 8; ++i) sent = (sent << 8) | data[i];
  uint64_t now = mono_ns();
  if (sent > now || now - sent > 600'000'000'000ull) return;
  uint64_t rtt = now - sent;
  c.rtt_100us = static_cast<uint16_t>(std::min<uint64_t>(rtt / 100'000, UINT16_MAX));
  node_.metrics.heartbeat_rtt.record(shard_, static_cast<double>(rtt) / 1e9);
}

void Worker::on_close_frame(Connection& c, uint16_t code, std::string_view reason) {
  if (c.state == ConnState::Open) {
    // The client starts the close handshake: echo its code, then close the
    // TCP connection once the reply is written (the server closes first, §7.1.1).
    c.set_close(code, Initiator::Client);
    if (!reason.empty()) c.ext().close_reason = std::string(reason);
    push_close(c, make_close_frame(code == ws::close_code::kNoStatus ? ws::close_code::kNormal : code,
                                   {}));
    c.close_sent = true;
    c.state = ConnState::Draining;
    wheel_.schedule(&c.timer, wheel_.tick_after(cfg_.close_timeout_ns));
    schedule_flush(c);
  } else if (c.state == ConnState::Closing) {
    // The client answered our Close: the handshake is complete.
    c.state = ConnState::Draining;
    if (c.out.empty()) finalize(c);
  }
}

void Worker::on_protocol_error(Connection& c, ws::Error e) {
  ++c.stats.errors;
  ErrorKind kind = ErrorKind::Protocol;
  if (e == ws::Error::InvalidUtf8) kind = ErrorKind::InvalidUtf8;
  if (e == ws::Error::MessageTooBig) kind = ErrorKind::MessageTooBig;
  if (e == ws::Error::CompressionError) kind = ErrorKind::Compression;
  if (e == ws::Error::Internal) kind = ErrorKind::Internal;
  node_.metrics.errors.add(shard_, 1, static_cast<uint32_t>(kind));
  auto scope = conn_log_scope(c);
  if (e == ws::Error::Internal) {
    // Our failure, not the client's: worth a warning (closed with 1011).
    WS_LOG(Warn, "internal error, closing the connection", {"id", c.id},
           {"error", ws::describe(e)});
  } else {
    WS_LOG(Debug, "protocol error", {"id", c.id}, {"error", ws::describe(e)});
  }
  trace_event(*this, c, "websocket.protocol_error",
              {{"error.type", std::string(ws::error_kind(e))},
               {"exception.message", std::string(ws::describe(e))},
               {"websocket.close.code", static_cast<int64_t>(ws::close_code_for(e))}});
  close(c, ws::close_code_for(e), ws::describe(e), Initiator::Error, false);
}

void Worker::on_eof(Connection& c) {
  if (c.state == ConnState::Open) {
    c.set_close(ws::close_code::kAbnormal, Initiator::Client);
    c.ext().close_reason = "connection closed without a Close frame";
  }
  finalize(c);
}

void Worker::socket_error(Connection& c, int err) {
  if (c.state == ConnState::Open || c.state == ConnState::Closing) {
    c.set_close(ws::close_code::kAbnormal,
                c.initiator() == Initiator::None ? Initiator::Error : c.initiator());
    c.ext().close_reason = std::string("socket error: ") + strerror(err);
    node_.metrics.errors.add(shard_, 1, static_cast<uint32_t>(ErrorKind::Socket));
  }
  finalize(c);
}

// ---------------------------------------------------------------------------
// Closing

void Worker::close(Connection& c, uint16_t code, std::string_view reason, Initiator who,
                   bool wait_for_client) {
  if (c.state == ConnState::Handshake) {
    finalize(c);
    return;
  }
  if (c.state != ConnState::Open) return;
  c.set_close(code, who);
  c.ext().close_reason = std::string(reason);
  push_close(c, make_close_frame(code, reason));
  c.close_sent = true;
  c.state = wait_for_client ? ConnState::Closing : ConnState::Draining;
  wheel_.schedule(&c.timer, wheel_.tick_after(cfg_.close_timeout_ns));
  schedule_flush(c);
}

void Worker::finalize(Connection& c) {
  if (c.state == ConnState::Dead) return;
  const bool was_websocket = c.state != ConnState::Handshake;
  net::TimerWheel::cancel(&c.timer);
  if (c.ssl != nullptr) {
    net::tls_free(c.ssl);  // close_notify, best effort
    c.ssl = nullptr;
  }
  if (c.ip_counted) {
    node_.ip_limits->release(IpLimits::key_of(c.peer.addr, c.peer.family));
    c.ip_counted = false;
  }
  ::close(c.fd);  // also removes it from epoll
  sockets_.fetch_sub(1, std::memory_order_relaxed);
  c.out.clear();
  c.release_input();
  if (c.extra && c.extra->inflater) {
    c.extra->inflater.reset();
    node_.connection_inflaters.fetch_sub(1, std::memory_order_relaxed);
  }
  if (c.extra && c.extra->outstanding > 0) {
    // Answers still to come find it gone.
    tracked_.erase(c.id);
    c.extra->outstanding = 0;
  }
  if (was_websocket) {
    node_.websockets.fetch_sub(1, std::memory_order_relaxed);
    if (c.deflate) node_.deflate_connections.fetch_sub(1, std::memory_order_relaxed);
    node_.metrics.connections_active.add(shard_, -1);
    node_.metrics.subscriptions_active.add(shard_, -static_cast<int64_t>(c.subscription_count()));
    if (c.close_code() == 0) c.set_close(ws::close_code::kAbnormal, c.initiator());
    const double seconds = static_cast<double>(unix_ns() - c.span.start_unix_ns) / 1e9;
    node_.metrics.connection_duration.record(shard_, seconds);
    trace_connection_end(*this, c);
    auto scope = conn_log_scope(c);
    WS_LOG(Debug, "connection closed", {"id", c.id}, {"code", c.close_code()},
           {"initiator", initiator_name(c.initiator())}, {"seconds", seconds},
           {"messages_received", c.stats.messages_received},
           {"messages_sent", c.stats.messages_sent});
  }
  c.state = ConnState::Dead;
  graveyard_.push_back(&c);
}

}  // namespace wstrace::server
