#include "server/worker.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "http/request.h"
#include "server/auth.h"
#include "server/tracing.h"
#include "util/clock.h"
#include "util/log.h"
#include "ws/handshake.h"

namespace wstrace::server {
namespace {

constexpr size_t kReadBufSize = 256 * 1024;
constexpr size_t kMaxRequestHead = 16 * 1024;  // larger upgrade requests get 431
constexpr int kMaxReadsPerEvent = 4;            // then yield to other connections
constexpr size_t kMaxRun = 512;                 // frames per writev in a fan-out
constexpr int kFlushIov = 128;
constexpr uint32_t kLatencyWindow = 64;  // subscribers per clock read in a fan-out
constexpr size_t kBlockSize = 64 * 1024;

thread_local Worker* t_worker = nullptr;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
Connection& from_timer(net::WheelNode* node) {
  return *reinterpret_cast<Connection*>(reinterpret_cast<char*>(node) -
                                        offsetof(Connection, timer));
}
#pragma GCC diagnostic pop

uint64_t ticks_for(uint64_t ns, uint64_t tick_ns) {
  return ns == 0 ? 0 : std::max<uint64_t>(1, (ns + tick_ns - 1) / tick_ns);
}

uint64_t choose_tick(const Config& c) {
  uint64_t smallest = UINT64_MAX;
  for (uint64_t v : {c.heartbeat_interval_ns, c.client_timeout_ns, c.handshake_timeout_ns,
                     c.close_timeout_ns}) {
    if (v > 0) smallest = std::min(smallest, v);
  }
  uint64_t tick = smallest == UINT64_MAX ? 500'000'000ull : smallest / 4;
  return std::clamp<uint64_t>(tick, 1'000'000ull, 500'000'000ull);
}

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

Worker::Worker(Node& node, unsigned index, int listen_fd)
    : node_(node),
      cfg_(node.cfg),
      index_(index),
      shard_(node.registry().shard(index + 1)),
      tracer_(&node.telemetry->tracer()),
      wheel_(mono_ns(), choose_tick(node.cfg), 4096),
      parser_(node.cfg.max_message_size) {
  const uint64_t tick = wheel_.tick_ns();
  hb_ticks_ = static_cast<uint32_t>(ticks_for(cfg_.heartbeat_interval_ns, tick));
  timeout_ticks_ = static_cast<uint32_t>(ticks_for(cfg_.client_timeout_ns, tick));
  ticks_per_second_ = static_cast<uint32_t>(std::max<uint64_t>(1, 1'000'000'000ull / tick));
  shared_inflater_ = std::make_unique<ws::Inflater>(15);
  read_buf_.reserve(kReadBufSize);
  registry_.on_interest = [this](const std::string& channel, bool active) {
    node_.directory.update(channel, active);
  };
  if (listen_fd >= 0) {
    listener_ = std::make_unique<net::Listener>(
        loop_, listen_fd,
        net::Listener::Callbacks{
            [this](int fd, const net::Address& peer) { accept(fd, peer); },
            [this](int) {
              node_.metrics.connections.add(shard_, 1, static_cast<uint32_t>(ConnOutcome::FdLimit));
              WS_LOG(Warn, "rejected a client: out of file descriptors", {"worker", index_});
            }});
  }
  loop_.add_before_sleep([this] { before_sleep(); });
  loop_.add_timer(tick, tick, [this] { on_tick(); });
}

Worker::~Worker() {
  loop_.drain();  // publications posted after the loop stopped
  listener_.reset();
  pool_.for_each([this](Connection* c) {
    if (c->state != ConnState::Dead) ::close(c->fd);
    pool_.destroy(c);
  });
  for (auto* p : incoming_) p->unref();
  for (auto* p : published_) p->unref();
  if (ping_frame_) ping_frame_->unref();
}

void Worker::start() {
  thread_ = std::thread([this] {
    t_worker = this;
    set_thread_shard(&shard_);
    loop_.run();
    t_worker = nullptr;
  });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

Worker* Worker::current() { return t_worker; }

// ---------------------------------------------------------------------------
// Connection storage

Connection* Worker::alloc_connection(int fd) { return pool_.create(fd); }

void Worker::free_connection(Connection* c) {
  registry_.unsubscribe_all(*c);
  pool_.destroy(c);
}

std::vector<Connection*> Worker::connections() const {
  std::vector<Connection*> all;
  all.reserve(pool_.size());
  pool_.for_each([&](Connection* c) { all.push_back(c); });
  return all;
}

// ---------------------------------------------------------------------------
// Input

void Worker::accept(int fd, const net::Address& peer) {
  if (shutting_down_) {
    ::close(fd);
    return;
  }
  net::tune_accepted(fd);
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
  c->span.start_unix_ns = unix_ns();  // the upgrade span starts at accept
  c->last_activity = wheel_.current();
  sockets_.fetch_add(1, std::memory_order_relaxed);
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
  if ((events & EPOLLOUT) && c.blocked) {
    c.blocked = false;
    flush(c);
    if (c.state == ConnState::Dead) return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) read(c);
}

void Worker::read(Connection& c) {
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
    ssize_t n = ::read(c.fd, dst, room);
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
      if (static_cast<size_t>(n) < room) return;  // drained for now; the next edge wakes us
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

  if (!cfg_.auth_secret.empty()) {
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
  [[maybe_unused]] ssize_t n = ::send(c.fd, response.data(), response.size(), MSG_NOSIGNAL);
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
    AuthResult a = verify_jwt(info.token, cfg_.auth_secret, static_cast<int64_t>(unix_ns() / 1'000'000'000ull));
    if (a.ok) {
      c.authenticated = true;
      if (!a.user_id.empty()) c.ext().user_id = std::move(a.user_id);
    } else {
      auth_error = std::move(a.error);
    }
  }
  c.state = ConnState::Open;
  trace_upgrade(*this, c, info.request, 101, {});
  // The 101 goes out at once: a fresh socket takes it whole, so a handshake
  // allocates nothing that outlives it. (Only if it does not fit is it queued.)
  ssize_t sent = ::send(c.fd, r.response.data(), r.response.size(), MSG_NOSIGNAL);
  ++c.write_calls;
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
    auto second = static_cast<uint16_t>(wheel_.current() / ticks_per_second_);
    ConnExtra& e = c.ext();  // only with --rate-limit
    if (second != e.rate_second) {
      e.rate_second = second;
      e.rate_count = 0;
    }
    if (e.rate_count >= cfg_.rate_limit) {
      node_.metrics.messages_dropped.add(shard_, 1, static_cast<uint32_t>(DropReason::RateLimited));
      return fail(protocol::ErrorCode::RateLimited,
                  "too many messages; the limit is --rate-limit per second");
    }
    ++e.rate_count;
  }
  if (!cfg_.auth_secret.empty() && !c.authenticated && m.type != protocol::Type::Ping) {
    return fail(protocol::ErrorCode::Unauthorized,
                "authentication required: connect with ?token=<JWT> or an Authorization header");
  }
  switch (m.type) {
    case protocol::Type::Ping:
      reply_.clear();
      protocol::encode_pong(reply_, m.id);
      send_reply(c, OutType::Pong);
      return false;
    case protocol::Type::Subscribe: {
      auto r = registry_.subscribe(c, m.channel, cfg_.max_subscriptions);
      if (r == pubsub::Registry::SubscribeResult::TooMany) {
        return fail(protocol::ErrorCode::TooManySubscriptions,
                    "subscription limit reached (--max-subscriptions)");
      }
      if (r == pubsub::Registry::SubscribeResult::Subscribed) {
        node_.metrics.channel_subscriptions.add(shard_, 1);
        node_.metrics.subscriptions_active.add(shard_, 1);
      }
      reply_.clear();
      protocol::encode_subscribed(reply_, m.channel, m.id);
      send_reply(c, OutType::Subscribed);
      return false;
    }
    case protocol::Type::Unsubscribe:
      if (!registry_.unsubscribe(c, m.channel)) {
        return fail(protocol::ErrorCode::NotSubscribed, "not subscribed to this channel");
      }
      node_.metrics.subscriptions_active.add(shard_, -1);
      reply_.clear();
      protocol::encode_unsubscribed(reply_, m.channel, m.id);
      send_reply(c, OutType::Unsubscribed);
      return false;
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
// Output

void Worker::send_frame(Connection& c, pubsub::Frame* f, OutType type) {
  if (c.state != ConnState::Open) {
    f->unref();
    node_.metrics.messages_dropped.add(shard_, 1, static_cast<uint32_t>(DropReason::Closing));
    return;
  }
  ++c.stats.messages_sent;
  node_.metrics.messages_sent.add(shard_, 1, static_cast<uint32_t>(type));
  enqueue(c, f);
}

void Worker::send_control(Connection& c, pubsub::Frame* f) {
  if (c.state != ConnState::Open) {
    f->unref();
    return;
  }
  enqueue(c, f);
}

void Worker::push_close(Connection& c, pubsub::Frame* f) {
  // Past --max-backpressure too: the Close is the last frame the client gets.
  c.stats.bytes_sent += f->size();
  node_.metrics.bytes_sent.add(shard_, f->size());
  c.out.push(f);
}

// Log lines about a connection carry its span's ids whenever it has some,
// sampled or not (an unsampled trace id can still be found upstream).
log::ScopedLogSpan Worker::conn_log_scope(const Connection& c) {
  if (!c.span_valid() || log::span_current()) return log::ScopedLogSpan();
  return log::ScopedLogSpan(c.span.trace_id.bytes.data(), c.span.span_id.bytes.data());
}

void Worker::enqueue(Connection& c, pubsub::Frame* f) {
  c.stats.bytes_sent += f->size();
  node_.metrics.bytes_sent.add(shard_, f->size());
  c.out.push(f);
  schedule_flush(c);
  check_backpressure(c);
}

void Worker::send_reply(Connection& c, OutType type) {
  static constexpr std::string_view kNames[] = {"Pong", "Subscribed", "Unsubscribed",
                                                "Message", "Error", "echo"};
  if (handle_.sampled()) trace_send(*this, c, handle_, kNames[static_cast<int>(type)], reply_.size());
  send_frame(c, pubsub::Frame::make(ws::Opcode::Text, reply_.data(), reply_.size()), type);
}

void Worker::send_error(Connection& c, protocol::ErrorCode code, std::string_view message,
                        const protocol::Id& id) {
  ++c.stats.errors;
  node_.metrics.errors.add(shard_, 1, static_cast<uint32_t>(ErrorKind::Client));
  reply_.clear();
  protocol::encode_error(reply_, code, message, id);
  send_reply(c, OutType::Error);
}

void Worker::flush(Connection& c) {
  if (c.state == ConnState::Dead) return;
  iovec iov[kFlushIov];
  while (!c.out.empty()) {
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = static_cast<size_t>(c.out.fill(iov, kFlushIov));
    ssize_t w = ::sendmsg(c.fd, &mh, MSG_NOSIGNAL);
    ++c.write_calls;
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        c.blocked = true;  // EPOLLOUT (edge-triggered) tells us when to go on
        return;
      }
      socket_error(c, errno);
      return;
    }
    // A publication frame is delivered when its last byte is written:
    // websocket.delivery.latency is observed now for a subscriber whose
    // socket was blocked (the direct path in deliver_run observes it there).
    uint64_t now = 0;
    c.out.consume(static_cast<size_t>(w), [&](const pubsub::Frame& f) {
      const uint32_t k = f.stamp_count();
      if (k == 0) return;
      if (now == 0) now = unix_ns();
      for (uint32_t i = 0; i < k; ++i) {
        const uint64_t t = f.stamp(i);
        const double seconds = now > t ? static_cast<double>(now - t) / 1e9 : 0.0;
        node_.metrics.delivery_latency.record(shard_, seconds);
      }
    });
  }
  // Everything is written: give the queue's storage back (a connection that
  // is idle after this holds no output memory).
  c.out.shrink();
  if (c.state == ConnState::Draining) finalize(c);
}

void Worker::check_backpressure(Connection& c) {
  if (c.state != ConnState::Open || c.out.bytes() <= cfg_.max_backpressure) return;
  // A slow consumer: drop what it has not started to receive (memory stays
  // bounded), tell it why, and stop sending it anything else.
  uint32_t dropped = c.out.drop_unstarted();
  node_.metrics.messages_dropped.add(shard_, dropped,
                                     static_cast<uint32_t>(DropReason::SlowConsumer));
  node_.metrics.slow_consumer_disconnects.add(shard_, 1);
  auto scope = conn_log_scope(c);
  WS_LOG(Info, "slow consumer disconnected", {"id", c.id}, {"peer", c.peer.to_string()},
         {"dropped_frames", dropped});
  trace_event(*this, c, "websocket.slow_consumer",
              {{"websocket.queued_bytes", static_cast<int64_t>(c.out.bytes())},
               {"websocket.dropped_frames", static_cast<int64_t>(dropped)},
               {"websocket.max_backpressure", static_cast<int64_t>(cfg_.max_backpressure)}});
  close(c, ws::close_code::kSlowConsumer, "slow consumer: too much data queued",
        Initiator::Server, false);
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
  ::close(c.fd);  // also removes it from epoll
  sockets_.fetch_sub(1, std::memory_order_relaxed);
  c.out.clear();
  c.release_input();
  if (c.extra && c.extra->inflater) {
    c.extra->inflater.reset();
    node_.connection_inflaters.fetch_sub(1, std::memory_order_relaxed);
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

// ---------------------------------------------------------------------------
// Publications

void Worker::publish(Connection& c, const protocol::ClientMessage& m) {
  (void)c;
  TraceContext trace;
  if (handle_.valid()) trace = trace_broadcast(*this, handle_, m.channel, m.content.size());
  pubsub::Publication* p = pubsub::Publication::make(m.channel, m.content, unix_ns(), trace,
                                                     node_.node_hash, reply_);
  node_.metrics.messages_broadcasted.add(shard_, 1);
  if (cfg_.channel_metrics > 0) {
    // Bounded: past the cap, new channels are counted together under "".
    constexpr size_t kMaxTracked = 10000;
    auto it = channel_published_.find(std::string(m.channel));
    if (it != channel_published_.end()) {
      ++it->second;
    } else if (channel_published_.size() < kMaxTracked) {
      channel_published_.emplace(std::string(m.channel), 1);
    } else {
      ++channel_published_[""];
    }
  }
  published_.push_back(p);
}

void Worker::post_publications(std::vector<pubsub::Publication*> batch) {
  loop_.post([this, batch = std::move(batch)] {
    incoming_.insert(incoming_.end(), batch.begin(), batch.end());
  });
}

void Worker::deliver(std::vector<pubsub::Publication*>& pubs) {
  runs_.clear();
  const uint64_t now = unix_ns();
  for (pubsub::Publication* p : pubs) {
    p->mark_delivery_start(now);
    pubsub::Channel* ch = registry_.find(p->channel());
    if (ch != nullptr && ch->size() > 0) runs_.emplace_back(ch, p);
  }
  // Group by channel, keeping each channel's publications in order, so each
  // subscriber gets one write per channel per iteration however many
  // messages arrived.
  std::stable_sort(runs_.begin(), runs_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  run_pubs_.clear();
  size_t i = 0;
  while (i < runs_.size()) {
    size_t j = i;
    run_pubs_.clear();
    while (j < runs_.size() && runs_[j].first == runs_[i].first) run_pubs_.push_back(runs_[j++].second);
    for (size_t off = 0; off < run_pubs_.size(); off += kMaxRun) {
      deliver_run(*runs_[i].first, run_pubs_.data() + off,
                  std::min(kMaxRun, run_pubs_.size() - off));
    }
    i = j;
  }
}

void Worker::deliver_run(pubsub::Channel& ch, pubsub::Publication* const* pubs, size_t k) {
  const auto& members = ch.members();
  // What one subscriber gets: the run's frames as one contiguous buffer, built
  // once per variant (plain, or compressed for a window size) and shared by
  // every subscriber of the run, so each write is a single segment.
  struct Variant {
    pubsub::Frame* frame = nullptr;  // the run (one reference held here)
    uint8_t bits = 0;                // 0: plain; else server_max_window_bits
  };
  auto build = [&](uint8_t bits) {
    frames_.resize(k);
    for (size_t i = 0; i < k; ++i) {
      frames_[i] = bits == 0 ? pubs[i]->plain() : pubs[i]->deflated(bits, deflaters_);
    }
    if (k == 1) {
      frames_[0]->ref();
      return Variant{frames_[0], bits};
    }
    return Variant{pubsub::Frame::concat(frames_.data(), k), bits};
  };
  Variant plain;
  Variant deflated;  // the last compressed variant used (usually the only one)

  uint32_t delivered = 0;
  uint32_t skipped = 0;
  uint32_t window = 0;
  uint64_t bytes = 0;
  auto record_latency = [&] {
    if (window == 0) return;
    const uint64_t now = unix_ns();
    for (size_t i = 0; i < k; ++i) {
      uint64_t t = pubs[i]->published_unix_ns();
      double seconds = now > t ? static_cast<double>(now - t) / 1e9 : 0.0;
      node_.metrics.delivery_latency.record_n(shard_, seconds, window);
    }
    window = 0;
  };

  for (size_t mi = 0; mi < members.size(); ++mi) {
    Connection& c = *static_cast<Connection*>(members[mi].sub);
    if (c.state != ConnState::Open) {
      ++skipped;
      continue;
    }
    pubsub::Frame* run;
    if (!c.deflate) {
      if (plain.frame == nullptr) plain = build(0);
      run = plain.frame;
    } else {
      if (deflated.bits != c.server_window_bits) {
        if (deflated.frame) deflated.frame->unref();
        deflated = build(c.server_window_bits);
      }
      run = deflated.frame;
    }
    const size_t total = run->size();
    c.stats.messages_sent += static_cast<uint32_t>(k);
    c.stats.bytes_sent += total;
    bytes += total;
    ++delivered;
    if (c.out.empty() && !c.blocked) {
      // The common case: one write straight from the shared bytes.
      ssize_t w = ::send(c.fd, run->data(), total, MSG_NOSIGNAL);
      ++c.write_calls;
      if (w == static_cast<ssize_t>(total)) {
        ++window;  // written: delivery latency observed for the window below
      } else {
        if (w < 0) {
          if (errno != EAGAIN && errno != EINTR) {
            socket_error(c, errno);
            continue;
          }
          w = 0;
        }
        // Queue what did not fit; from now on this subscriber costs nothing
        // per message until its socket is writable again. The frame carries
        // the publication times: flush() observes the latency once written.
        run->ref();
        c.out.push(run, static_cast<uint32_t>(w));
        flush(c);
        check_backpressure(c);
      }
    } else {
      run->ref();
      c.out.push(run);
      schedule_flush(c);
      check_backpressure(c);
    }
    if (window == kLatencyWindow) record_latency();
  }
  record_latency();
  if (plain.frame) plain.frame->unref();
  if (deflated.frame) deflated.frame->unref();
  node_.metrics.messages_sent.add(shard_, uint64_t{delivered} * k,
                                  static_cast<uint32_t>(OutType::Message));
  node_.metrics.bytes_sent.add(shard_, bytes);
  if (skipped > 0) {
    node_.metrics.messages_dropped.add(shard_, uint64_t{skipped} * k,
                                       static_cast<uint32_t>(DropReason::Closing));
  }
  for (size_t i = 0; i < k; ++i) pubs[i]->add_delivered(delivered, skipped);
}

// ---------------------------------------------------------------------------
// Loop iteration and timers

void Worker::before_sleep() {
  if (!read_list_.empty()) {
    std::vector<Connection*> list;
    list.swap(read_list_);
    for (Connection* c : list) {
      c->in_read_list = false;
      if (c->state != ConnState::Dead) read(*c);
    }
  }

  if (!published_.empty()) {
    // Other threads first, so they deliver while we do.
    for (Worker* w : node_.workers) {
      if (w == this) continue;
      for (auto* p : published_) p->ref();
      w->post_publications(published_);
    }
    if (node_.on_local_publish) node_.on_local_publish(published_);
    delivering_.insert(delivering_.end(), published_.begin(), published_.end());
    published_.clear();
  }
  if (!incoming_.empty()) {
    delivering_.insert(delivering_.end(), incoming_.begin(), incoming_.end());
    incoming_.clear();
  }
  if (!delivering_.empty()) {
    deliver(delivering_);
    for (auto* p : delivering_) p->unref();
    delivering_.clear();
  }

  for (size_t i = 0; i < flush_list_.size(); ++i) {
    Connection* c = flush_list_[i];
    c->in_flush_list = false;
    if (c->state != ConnState::Dead && !c->blocked) flush(*c);
  }
  flush_list_.clear();

  for (Connection* c : graveyard_) free_connection(c);
  graveyard_.clear();

  if (shutting_down_ && pool_.size() == 0 && stop_when_empty_) loop_.stop();
}

void Worker::on_tick() {
  wheel_.advance(loop_.now(), [this](net::WheelNode* n) { on_timer(from_timer(n)); });
}

void Worker::on_timer(Connection& c) {
  switch (c.state) {
    case ConnState::Handshake:
      reject(c, static_cast<int>(ws::Rejection::Timeout), "handshake not completed in time");
      return;
    case ConnState::Closing:
    case ConnState::Draining:
      finalize(c);  // the close handshake did not finish in time
      return;
    case ConnState::Dead:
      return;
    case ConnState::Open:
      break;
  }
  const uint32_t now = wheel_.current();
  // last_activity is a whole tick, up to one tick before the real time of the
  // frame: only more than timeout_ticks since it means at least the timeout.
  if (timeout_ticks_ > 0 &&
      static_cast<int32_t>(now - c.last_activity) > static_cast<int32_t>(timeout_ticks_)) {
    node_.metrics.heartbeat_timeouts.add(shard_, 1);
    auto scope = conn_log_scope(c);
    WS_LOG(Debug, "heartbeat timeout", {"id", c.id}, {"peer", c.peer.to_string()});
    trace_event(*this, c, "websocket.heartbeat_timeout",
                {{"websocket.silent_ms", static_cast<double>(now - c.last_activity) *
                                             static_cast<double>(wheel_.tick_ns()) / 1e6}});
    // The client is silent, likely gone: do not wait for its Close.
    close(c, ws::close_code::kHeartbeatTimeout, "heartbeat timeout", Initiator::Timeout, false);
    return;
  }
  if (hb_ticks_ > 0 && static_cast<int32_t>(now - c.last_ping) >= static_cast<int32_t>(hb_ticks_)) {
    if (ping_frame_ == nullptr || ping_frame_tick_ != now) {
      if (ping_frame_) ping_frame_->unref();
      uint8_t payload[8];
      uint64_t t = mono_ns();
      for (int i = 7; i >= 0; --i) {
        payload[i] = static_cast<uint8_t>(t);
        t >>= 8;
      }
      ping_frame_ = pubsub::Frame::make(ws::Opcode::Ping, payload, sizeof payload);
      ping_frame_tick_ = now;
    }
    ping_frame_->ref();
    send_control(c, ping_frame_);
    c.last_ping = now;
  }
  // An idle connection gives its buffers back.
  if (c.out.empty()) c.out.shrink();
  if (!c.has_input()) c.release_input();
  schedule_heartbeat(c);
}

void Worker::schedule_heartbeat(Connection& c) {
  if (c.state != ConnState::Open) return;
  bool any = false;
  uint32_t due = 0;
  auto consider = [&](uint32_t t) {
    if (!any || static_cast<int32_t>(t - due) < 0) due = t;
    any = true;
  };
  if (hb_ticks_ > 0) consider(c.last_ping + hb_ticks_);
  if (timeout_ticks_ > 0) consider(c.last_activity + timeout_ticks_ + 1);
  if (!any) {
    net::TimerWheel::cancel(&c.timer);
    return;
  }
  wheel_.schedule(&c.timer, due);
}

// ---------------------------------------------------------------------------
// Shutdown and introspection

void Worker::begin_shutdown() {
  loop_.post([this] {
    shutting_down_ = true;
    stop_when_empty_ = true;
    if (listener_) listener_->close();
    std::vector<Connection*> all = connections();
    for (Connection* c : all) {
      if (c->state == ConnState::Handshake) {
        finalize(*c);
      } else if (c->state == ConnState::Open) {
        close(*c, ws::close_code::kGoingAway, "server shutting down", Initiator::Shutdown, true);
      }
    }
  });
}

void Worker::stop() {
  loop_.post([this] {
    shutting_down_ = true;
    if (listener_) listener_->close();
    std::vector<Connection*> all = connections();
    for (Connection* c : all) {
      if (c->state != ConnState::Dead) {
        if (c->close_code() == 0) c->set_close(ws::close_code::kGoingAway, Initiator::Shutdown);
        finalize(*c);
      }
    }
    // The graveyard is freed by before_sleep, which still runs after this
    // task (this iteration's flush list may point at these connections).
    loop_.stop();
  });
}

void Worker::collect_connections(std::vector<ConnInfo>& out) const {
  static constexpr const char* kStates[] = {"handshake", "open", "closing", "draining", "dead"};
  pool_.for_each([&](const Connection* c) {
    if (c->state == ConnState::Dead) return;
    ConnInfo info;
    info.id = c->id;
    info.peer = c->peer.to_string();
    info.state = kStates[static_cast<int>(c->state)];
    if (c->extra) info.user_id = c->extra->user_id;
    info.opened_unix_ns = c->span.start_unix_ns;
    info.subscriptions = c->subscription_count();
    info.rtt_ms = c->rtt_ms();
    info.queued_bytes = c->out.bytes();
    info.stats = c->stats;
    info.deflate = c->deflate;
    info.thread = index_;
    info.write_calls = c->write_calls;
    out.push_back(std::move(info));
  });
}

void Worker::channel_sample(ChannelMetrics::Sample& out) const {
  for (const auto& [name, n] : channel_published_) out.published[name] += n;
  registry_.for_each_channel(
      [&](const pubsub::Channel& ch) { out.subscribers[ch.name()] += ch.size(); });
}

void Worker::collect_channels(std::vector<std::pair<std::string, size_t>>& out) const {
  registry_.for_each_channel([&](const pubsub::Channel& ch) { out.emplace_back(ch.name(), ch.size()); });
}

}  // namespace wstrace::server
