// The state of one client connection. Kept small on purpose (an idle
// connection is mostly this struct: see the static_assert below): anything
// needed only sometimes lives behind `extra`, partial input in `in`, queued
// output in `out`, and all of them are freed again when the connection idles.
// A connection belongs to one worker thread and is touched only by it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "net/event_loop.h"
#include "net/timer_wheel.h"
#include "net/tls.h"
#include "pubsub/out_queue.h"
#include "pubsub/registry.h"
#include "util/buffer.h"
#include "util/token_bucket.h"
#include "telemetry/span.h"
#include "telemetry/tracer.h"
#include "ws/deflate.h"
#include "ws/receiver.h"

namespace wstrace::server {

class Worker;

enum class ConnState : uint8_t {
  Handshake,  // reading the HTTP upgrade request
  Open,       // WebSocket open
  Closing,    // we sent Close and wait for the client's
  Draining,   // close handshake over (or failed): flush what is queued, then close
  Dead,       // socket closed; freed at the end of the loop iteration
};

// Who ended the connection (the span's close initiator attribute).
enum class Initiator : uint8_t { None, Client, Server, Timeout, Error, Shutdown };
const char* initiator_name(Initiator i);

// Rarely needed state, allocated on demand.
struct ConnExtra {
  std::unique_ptr<ws::Inflater> inflater;  // only with client context takeover
  std::string user_id;                     // from a verified token
  std::vector<std::string> claim_channels;  // the token's "channels" globs
  std::vector<std::string> claim_publish;   // the token's "publish" globs
  int64_t token_exp = 0;                    // the token's "exp" (unix s), 0: none
  bool refresh_requested = false;           // a Refresh was sent for token_exp
  std::string close_reason;                // the reason of the Close frame sent or received
  uint16_t close_code = 0;                 // sent, or received from the client
  Initiator initiator = Initiator::None;   // who ended the connection
  TokenBucket rate;                        // --rate-limit
  bool rate_started = false;               // `rate` was filled
  TokenBucket errors;                      // --error-budget
  bool errors_started = false;
  std::vector<telemetry::Event> events;    // span events (timeouts, errors), kept for the end
  telemetry::SpanId client_parent;         // the handshake traceparent's span, if any
  std::string trace_state;                 // the handshake's tracestate, if any
  bool upgrade_sampled = false;            // the upgrade span was exported at the time
  uint32_t outstanding = 0;                // answers awaited from elsewhere (Worker::track)
};

// The seed's ConnectionStats. Packed: it lives in every connection.
struct __attribute__((packed, aligned(4))) ConnStats {
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint32_t messages_sent = 0;
  uint32_t messages_received = 0;
  uint32_t errors = 0;
  // Messages this connection did not get, by reason: refused or dropped when
  // it was closed as a slow consumer, and positions it was told it lost (a
  // Gap: the cluster could not deliver them and the history no longer had them).
  uint32_t dropped_slow_consumer = 0;
  uint32_t dropped_lost = 0;
  uint32_t dropped() const { return dropped_slow_consumer + dropped_lost; }
};

// IPv4/IPv6 peer address in 20 bytes.
struct PeerAddress {
  uint8_t addr[16] = {};
  uint16_t port = 0;
  uint8_t family = 0;  // AF_INET or AF_INET6
  std::string to_string() const;
};

class Connection final : public net::IoHandler, public pubsub::Subscriber {
  // See the static_assert after the class: an idle connection is this struct.

 public:
  explicit Connection(int fd) : fd(fd) {}
  // Dispatches to the worker of the calling thread (the connection's own:
  // a connection is only ever registered with its worker's event loop).
  void on_io(uint32_t events) override;

  bool is_open() const { return state == ConnState::Open; }
  // How the connection ended (kept in ConnExtra: only closing connections need it).
  uint16_t close_code() const { return extra ? extra->close_code : 0; }
  Initiator initiator() const { return extra ? extra->initiator : Initiator::None; }
  void set_close(uint16_t code, Initiator who) {
    ConnExtra& e = ext();
    e.close_code = code;
    e.initiator = who;
  }
  double rtt_ms() const { return rtt_100us / 10.0; }
  ConnExtra& ext() {
    if (!extra) extra = std::make_unique<ConnExtra>();
    return *extra;
  }

  int fd;
  ::ssl_st* ssl = nullptr;  // the TLS session (--tls-cert), or null
  ConnState state = ConnState::Handshake;
  uint8_t endpoint = 0;  // ws::Endpoint
  uint8_t trace_flags = 0;  // of the connection span

  // Flags.
  bool deflate : 1 = false;                     // permessage-deflate negotiated
  bool client_no_context_takeover : 1 = false;  // client resets its window per message
  bool blocked : 1 = false;                     // socket full: wait for EPOLLOUT
  bool in_flush_list : 1 = false;               // corked output to send this iteration
  bool in_read_list : 1 = false;                // more input to read next iteration
  bool authenticated : 1 = false;               // a valid token was presented
  bool close_sent : 1 = false;
  bool sampled : 1 = false;                     // head sampling kept the connection span
  bool tls_handshaking : 1 = false;             // TLS handshake not done yet
  bool kernel_tls : 1 = false;                  // the kernel encrypts this socket's writes
  bool tls_write_held : 1 = false;              // OpenSSL holds a record a blocked write made
  bool ip_counted : 1 = false;                  // counted in the per-address limits
  uint8_t server_window_bits : 4 = 15;          // window we compress with
  uint8_t client_window_bits : 4 = 15;          // window the client compresses with

  uint16_t rtt_100us = 0;        // last heartbeat round trip, in 100 µs (saturates at 6.5 s)
  uint32_t last_activity = 0;    // wheel tick of the last frame received
  uint32_t last_ping = 0;        // wheel tick of the last Ping sent
  uint64_t id = 0;

  // The wheel node's 4 bytes of tail padding hold `write_calls`
  // ([[no_unique_address]] lets the next member reuse them; nothing copies
  // the node as a whole), so the counter costs an idle connection nothing.
  [[no_unique_address]] net::WheelNode timer;
  // Write syscalls made for this connection (send/sendmsg, including those
  // that returned EAGAIN): /api/connections shows it, so tests can check
  // corking and that a blocked subscriber costs no syscall per message.
  uint32_t write_calls = 0;
  ws::Receiver receiver;
  // Unconsumed input (a partial frame or request), allocated only while there
  // is some: most connections have none most of the time.
  std::unique_ptr<Buffer> in_;
  bool has_input() const { return in_ && !in_->empty(); }
  Buffer& input() {
    if (!in_) in_ = std::make_unique<Buffer>();
    return *in_;
  }
  void release_input() { in_.reset(); }
  pubsub::OutQueue out;
  std::unique_ptr<ConnExtra> extra;
  ConnStats stats;
  PeerAddress peer;

  // The connection span, kept compact until it ends: ids, parent (the
  // upgrade span), start time (during the handshake: the accept time). Its
  // trace flags are `trace_flags` above (a SpanStart would pad to 48 bytes).
  struct Span {
    telemetry::TraceId trace_id;
    telemetry::SpanId span_id;
    telemetry::SpanId parent_span_id;
    uint64_t start_unix_ns = 0;
  } span;

  telemetry::SpanStart span_start() const {
    telemetry::SpanStart s;
    s.trace_id = span.trace_id;
    s.span_id = span.span_id;
    s.parent_span_id = span.parent_span_id;
    s.start_unix_ns = span.start_unix_ns;
    s.trace_flags = trace_flags;
    return s;
  }
  void set_span(const telemetry::SpanStart& s) {
    span.trace_id = s.trace_id;
    span.span_id = s.span_id;
    span.parent_span_id = s.parent_span_id;
    span.start_unix_ns = s.start_unix_ns;
    trace_flags = s.trace_flags;
  }
  bool span_valid() const { return span.trace_id.valid() && span.span_id.valid(); }
  bool span_sampled() const { return (trace_flags & telemetry::kFlagSampled) != 0; }
};

}  // namespace wstrace::server

namespace wstrace::server {
// Userland memory per idle connection is this struct (pooled, no malloc
// header) and nothing else: the target is 256 bytes with telemetry on.
static_assert(sizeof(Connection) <= 256, "Connection grew past the 256-byte budget");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
static_assert(offsetof(Connection, write_calls) + sizeof(uint32_t) <=
                  offsetof(Connection, timer) + sizeof(net::WheelNode),
              "write_calls is meant to live in the timer node's tail padding");
#pragma GCC diagnostic pop
}  // namespace wstrace::server
