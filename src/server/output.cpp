// Output: replies and control frames, the per-connection queue, corked
// flushes (one sendmsg per connection per loop iteration) and the
// --max-backpressure limit.
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "server/tracing.h"
#include "server/worker.h"
#include "util/clock.h"
#include "util/log.h"

namespace wstrace::server {
namespace {

constexpr int kFlushIov = 128;

}  // namespace

// ---------------------------------------------------------------------------
// Output

void Worker::send_frame(Connection& c, pubsub::Frame* f, OutType type) {
  if (c.state != ConnState::Open) {
    f->unref();
    node_.metrics.messages_dropped.add(shard_, 1, static_cast<uint32_t>(DropReason::Closing));
    return;
  }
  if (!admit(c, 1)) {
    f->unref();
    return;
  }
  ++c.stats.messages_sent;
  node_.metrics.messages_sent.add(shard_, 1, static_cast<uint32_t>(type));
  enqueue(c, f);
}

void Worker::send_control(Connection& c, pubsub::Frame* f) {
  if (c.state != ConnState::Open || !admit(c, 0)) {
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
}

void Worker::send_reply(Connection& c, OutType type) {
  static constexpr std::string_view kNames[] = {"Pong",  "Subscribed", "Unsubscribed",
                                                "Message", "Error", "echo",
                                                "History", "Published", "Gap",
                                                "Refresh", "Refreshed", "Presence",
                                                "Join", "Leave"};
  if (handle_.sampled()) trace_send(*this, c, handle_, kNames[static_cast<int>(type)], reply_.size());
  send_frame(c, pubsub::Frame::make(ws::Opcode::Text, reply_.data(), reply_.size()), type);
}

void Worker::send_error(Connection& c, protocol::ErrorCode code, std::string_view message,
                        const protocol::Id& id) {
  // Not counted: the server's own refusals that say "later" (rate limit, an
  // unreachable cluster), which a well-behaved client can run into.
  if (cfg_.error_budget > 0 && code != protocol::ErrorCode::Unavailable &&
      code != protocol::ErrorCode::RateLimited) {
    // --error-budget per minute, as a token bucket: a client that keeps
    // sending what it should not is closed with 1008.
    const double rate = cfg_.error_budget / 60.0;
    const double burst = cfg_.error_budget;
    ConnExtra& e = c.ext();
    if (!e.errors_started) {
      e.errors.reset(burst, loop_.now());
      e.errors_started = true;
    }
    if (!e.errors.take(rate, burst, loop_.now())) {
      ++c.stats.errors;
      node_.metrics.errors.add(shard_, 1, static_cast<uint32_t>(ErrorKind::Client));
      trace_event(*this, c, "websocket.error_budget_exceeded",
                  {{"websocket.error_budget", static_cast<int64_t>(cfg_.error_budget)},
                   {"error.type", std::string(protocol::error_code_name(code))}});
      auto scope = conn_log_scope(c);
      WS_LOG(Info, "closed a client that exceeded --error-budget", {"id", c.id},
             {"peer", c.peer.to_string()});
      close(c, ws::close_code::kPolicy, "too many errors", Initiator::Server, false);
      return;
    }
  }
  ++c.stats.errors;
  node_.metrics.errors.add(shard_, 1, static_cast<uint32_t>(ErrorKind::Client));
  reply_.clear();
  protocol::encode_error(reply_, code, message, id);
  send_reply(c, OutType::Error);
}

ssize_t Worker::write_some(Connection& c, const uint8_t* data, size_t len) {
  ++c.write_calls;
  if (c.ssl != nullptr && !c.kernel_tls) {
    const ssize_t w = net::tls_write(c.ssl, data, len);
    c.tls_write_held = w < 0 && errno == EAGAIN;
    return w;
  }
  return ::send(c.fd, data, len, MSG_NOSIGNAL);
}

ssize_t Worker::writev_some(Connection& c, iovec* iov, int n) {
  if (c.ssl == nullptr || c.kernel_tls) {
    ++c.write_calls;
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = static_cast<size_t>(n);
    return ::sendmsg(c.fd, &mh, MSG_NOSIGNAL);
  }
  // TLS: a record per call. Small frames are gathered into one record (a
  // record and a send per queued frame would cost their fixed overhead each
  // time); a first frame that fills a record goes as it is. After a blocked
  // write the queue's head is the same, so the retry passes the same bytes,
  // at least as many, as OpenSSL requires.
  if (n == 1 || iov[0].iov_len >= net::kTlsRecord) {
    return write_some(c, static_cast<const uint8_t*>(iov[0].iov_base), iov[0].iov_len);
  }
  if (!tls_record_) tls_record_ = std::make_unique<uint8_t[]>(net::kTlsRecord);
  size_t len = 0;
  for (int i = 0; i < n && len < net::kTlsRecord; ++i) {
    const size_t take = std::min(iov[i].iov_len, net::kTlsRecord - len);
    std::memcpy(tls_record_.get() + len, iov[i].iov_base, take);
    len += take;
  }
  return write_some(c, tls_record_.get(), len);
}

void Worker::flush(Connection& c) {
  if (c.state == ConnState::Dead) return;
  iovec iov[kFlushIov];
  while (!c.out.empty()) {
    ssize_t w = writev_some(c, iov, c.out.fill(iov, kFlushIov));
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

// --max-backpressure bounds what is already queued when a frame comes: an
// empty queue always takes one (a message larger than the limit is still
// delivered to a reader that keeps up), a queue past the limit takes none.
bool Worker::admit(Connection& c, uint32_t messages) {
  if (c.out.bytes() <= cfg_.max_backpressure) return true;
  slow_consumer(c, messages);
  return false;
}

void Worker::slow_consumer(Connection& c, uint32_t refused) {
  if (c.state != ConnState::Open) return;
  // Drop what it has not started to receive (memory stays bounded), tell it
  // why, and stop sending it anything else.
  const uint64_t queued = c.out.bytes();
  // Frames of a record OpenSSL holds are on their way: they stay (dropping
  // them would make the retried write carry other bytes than the record).
  const uint32_t dropped =
      c.out.drop_unstarted(c.tls_write_held ? net::kTlsRecord : 0) + refused;
  c.stats.dropped_slow_consumer += dropped;
  node_.metrics.messages_dropped.add(shard_, dropped,
                                     static_cast<uint32_t>(DropReason::SlowConsumer));
  node_.metrics.slow_consumer_disconnects.add(shard_, 1);
  auto scope = conn_log_scope(c);
  WS_LOG(Info, "slow consumer disconnected", {"id", c.id}, {"peer", c.peer.to_string()},
         {"queued_bytes", queued}, {"dropped_frames", dropped});
  trace_event(*this, c, "websocket.slow_consumer",
              {{"websocket.queued_bytes", static_cast<int64_t>(queued)},
               {"websocket.dropped_frames", static_cast<int64_t>(dropped)},
               {"websocket.max_backpressure", static_cast<int64_t>(cfg_.max_backpressure)}});
  close(c, ws::close_code::kSlowConsumer, "slow consumer: too much data queued",
        Initiator::Server, false);
}

}  // namespace wstrace::server
