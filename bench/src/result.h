// What one worker measured; the parent merges them into the run's result.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "histogram.h"
#include "wire.h"

namespace wsbench {

struct Result {
  // Connections.
  uint64_t attempted = 0;
  uint64_t connected = 0;          // handshake completed (101)
  uint64_t connect_failed = 0;     // refused, reset, timeout before 101
  uint64_t handshake_failed = 0;   // answered, but not with a valid 101
  uint64_t subscribed = 0;
  uint64_t disconnected = 0;       // closed by the server (or reset) while in use
  uint64_t alive_at_end = 0;       // answered a Ping with a Pong at the end (connect)
  uint64_t server_errors = 0;      // {"type":"Error"} replies
  uint64_t pings_answered = 0;     // server heartbeats answered with a Pong
  uint64_t connect_ns = 0;         // start to the last connection established
  uint64_t deflate_conns = 0;      // connections that negotiated permessage-deflate
  uint64_t tls_handshakes = 0;     // --tls: TLS handshakes completed
  uint64_t tls_resumed = 0;        // ... of which resumed a session
  // Fan-out.
  uint64_t published = 0;          // messages sent in the whole run
  uint64_t published_window = 0;   // ... during the measured window
  uint64_t deliveries = 0;         // all deliveries received
  uint64_t deliveries_window = 0;  // deliveries received during the measured window
  uint64_t expected = 0;           // deliveries the checked subscribers should have had
  uint64_t unique = 0;             // distinct deliveries they had
  uint64_t lost = 0;
  uint64_t duplicated = 0;
  uint64_t reordered = 0;
  uint64_t misrouted = 0;          // wrong channel, unknown publisher
  uint64_t corrupt = 0;            // unparseable content
  uint64_t gaps_forgotten = 0;     // missing sequences past the checker's gap cap (sequence.h)
  uint64_t publisher_stalls = 0;   // ticks a paced publisher could not write (socket full)
  uint64_t laggard_received = 0;
  uint64_t laggard_closed = 0;     // laggards the server closed
  // Churn.
  uint64_t cycles = 0;
  uint64_t cycle_failures = 0;
  // Positions: every Message's offset is the one after the last the
  // subscriber saw on that channel (its Subscribed, a Gap's end).
  uint64_t offsets_checked = 0;
  uint64_t offset_errors = 0;      // an offset other than the next one
  uint64_t gap_notices = 0;        // {"type":"Gap"} (a cluster's reported losses)
  // recover: subscribers back with `since`.
  uint64_t recovered = 0;          // recovered:true and every missed message, in order
  uint64_t not_recovered = 0;      // recovered:false, or lost before it was done
  uint64_t recovered_messages = 0;
  // --api: publishes answered by the server API (200 with an offset), others.
  uint64_t api_answers = 0;
  uint64_t api_answers_window = 0;
  uint64_t api_failures = 0;
  // Worker process.
  uint64_t bench_cpu_ns = 0;
  uint64_t window_ns = 0;
  std::map<uint64_t, uint64_t> close_codes;  // code seen from the server -> count
  std::map<std::string, uint64_t> errors;    // reason -> count
  Histogram latency;      // publish -> deliver, measured window (recover: reconnect -> recovered)
  Histogram handshake;    // connect() -> 101
  Histogram publish_lag;  // paced publishers: actual send - scheduled send
  Histogram api_latency;  // --api: request written -> its answer read

  bool correct() const {
    return lost == 0 && duplicated == 0 && reordered == 0 && misrouted == 0 && corrupt == 0 &&
           disconnected == 0 && connect_failed == 0 && handshake_failed == 0 &&
           server_errors == 0 && cycle_failures == 0 && offset_errors == 0 &&
           not_recovered == 0 && api_failures == 0;
  }

  void merge(const Result& o) {
    attempted += o.attempted;
    connected += o.connected;
    connect_failed += o.connect_failed;
    handshake_failed += o.handshake_failed;
    subscribed += o.subscribed;
    disconnected += o.disconnected;
    alive_at_end += o.alive_at_end;
    server_errors += o.server_errors;
    pings_answered += o.pings_answered;
    connect_ns = connect_ns > o.connect_ns ? connect_ns : o.connect_ns;
    deflate_conns += o.deflate_conns;
    tls_handshakes += o.tls_handshakes;
    tls_resumed += o.tls_resumed;
    published += o.published;
    published_window += o.published_window;
    deliveries += o.deliveries;
    deliveries_window += o.deliveries_window;
    expected += o.expected;
    unique += o.unique;
    lost += o.lost;
    duplicated += o.duplicated;
    reordered += o.reordered;
    misrouted += o.misrouted;
    corrupt += o.corrupt;
    gaps_forgotten += o.gaps_forgotten;
    publisher_stalls += o.publisher_stalls;
    laggard_received += o.laggard_received;
    laggard_closed += o.laggard_closed;
    cycles += o.cycles;
    cycle_failures += o.cycle_failures;
    offsets_checked += o.offsets_checked;
    offset_errors += o.offset_errors;
    gap_notices += o.gap_notices;
    recovered += o.recovered;
    not_recovered += o.not_recovered;
    recovered_messages += o.recovered_messages;
    api_answers += o.api_answers;
    api_answers_window += o.api_answers_window;
    api_failures += o.api_failures;
    bench_cpu_ns += o.bench_cpu_ns;
    window_ns = window_ns > o.window_ns ? window_ns : o.window_ns;
    for (auto& [k, v] : o.close_codes) close_codes[k] += v;
    for (auto& [k, v] : o.errors) errors[k] += v;
    latency.merge(o.latency);
    handshake.merge(o.handshake);
    publish_lag.merge(o.publish_lag);
    api_latency.merge(o.api_latency);
  }

#define WSBENCH_RESULT_FIELDS(X)                                                              \
  X(attempted) X(connected) X(connect_failed) X(handshake_failed) X(subscribed)              \
  X(disconnected) X(alive_at_end) X(server_errors) X(pings_answered) X(connect_ns) X(deflate_conns) \
  X(tls_handshakes) X(tls_resumed)                                                           \
  X(published) X(published_window) X(deliveries) X(deliveries_window) X(expected) X(unique)  \
  X(lost) X(duplicated) X(reordered) X(misrouted) X(corrupt) X(gaps_forgotten)               \
  X(publisher_stalls)                                                                        \
  X(laggard_received) X(laggard_closed) X(cycles) X(cycle_failures) X(bench_cpu_ns)          \
  X(window_ns) X(offsets_checked) X(offset_errors) X(gap_notices) X(recovered)               \
  X(not_recovered) X(recovered_messages) X(api_answers) X(api_answers_window) X(api_failures)

  void write(Writer& w) const {
#define X(f) w.u64(f);
    WSBENCH_RESULT_FIELDS(X)
#undef X
    w.u64(close_codes.size());
    for (auto& [k, v] : close_codes) {
      w.u64(k);
      w.u64(v);
    }
    w.u64(errors.size());
    for (auto& [k, v] : errors) {
      w.str(k);
      w.u64(v);
    }
    latency.write(w);
    handshake.write(w);
    publish_lag.write(w);
    api_latency.write(w);
  }
  bool read(Reader& r) {
#define X(f) f = r.u64();
    WSBENCH_RESULT_FIELDS(X)
#undef X
    uint64_t n = r.u64();
    for (uint64_t i = 0; i < n && r.ok(); ++i) {
      uint64_t k = r.u64();
      close_codes[k] += r.u64();
    }
    n = r.u64();
    for (uint64_t i = 0; i < n && r.ok(); ++i) {
      std::string k = r.str();
      errors[k] += r.u64();
    }
    return latency.read(r) && handshake.read(r) && publish_lag.read(r) && api_latency.read(r) &&
           r.ok();
  }
};

}  // namespace wsbench
