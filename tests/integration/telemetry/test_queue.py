"""A full export queue: the OTLP endpoint refuses connections (every export
is retried with backoff) or accepts them and never answers (every export
waits for its timeout), so the batch processor is stuck, and
OTEL_BSP_MAX_QUEUE_SIZE is 8, while clients produce tens of thousands of
spans (every message is sampled: handle, broadcast, fan-out; Pings: handle,
send).

- The server keeps serving: every Ping is answered, in order.
- A collector that is down: failed requests, spans and metric data points
  are counted (wstrace_otlp_request_failures_total,
  otel_sdk_exporter_*_exported_total{error_type="export_failed"}).
- Spans are dropped and counted: otel_sdk_processor_span_processed_total{error_type="queue_full"}
  in /metrics accounts for what was recorded and is neither queued nor
  exported; the queue never holds more than its capacity.
- Memory does not grow without bound: the RSS after a second phase as big as
  the first stays within a generous bound of the RSS after the first. A
  control run with a huge queue shows the same load does grow memory when
  spans are kept, so the bound means something. No timing is asserted.
"""

import json
import os
import socket
import unittest

from telemetry_support import refused_port, rss_bytes, run_main
from wstrace_harness import OP_TEXT, Deadline, RawClient, WstraceServer, encode_frame, wait_until

MESSAGES_PER_PHASE = 20000     # per phase, over two connections
PHASE_TIME = 120.0             # a bound for one phase (sanitizer builds included)
PING_EVERY = 500
CHANNEL = "queue-test/" + "c" * 100   # long names make each span heavier
SMALL_QUEUE = 8
# Generous: allocator slack between two identical phases. A kept span costs
# about 1 KiB, so keeping a phase's ~60k spans would exceed it (see the
# control test).
RSS_BOUND = 24 << 20


def server(queue_size, endpoint_port):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{endpoint_port}",
           "OTEL_BSP_MAX_QUEUE_SIZE": str(queue_size),
           "OTEL_BSP_SCHEDULE_DELAY": "50",
           "OTEL_METRIC_EXPORT_INTERVAL": "1000",
           "OTEL_TRACES_SAMPLER": "always_on",
           # In a sanitizer build, freed memory sits in ASan's quarantine
           # (256 MiB by default) before reuse: keep it small, or it looks
           # like growth. No effect on other builds.
           "ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "")
                            + ":quarantine_size_mb=4:thread_local_quarantine_size_kb=256")}
    # The exporter is still retrying at SIGTERM: a short shutdown budget
    # cancels it (what is left is dropped and counted).
    return WstraceServer("--shutdown-timeout", "1s", threads=2, env=env)


class Load:
    """Two raw clients: pipelined batches of Messages (to a channel nobody
    subscribes to: no reply) with a Ping every PING_EVERY; every Pong must
    come back, in order."""

    def __init__(self, port):
        self.clients = [RawClient(port), RawClient(port)]
        for c in self.clients:
            c.handshake()
        self.next_id = 0      # Pings sent
        self.messages = 0     # Messages sent
        msg = json.dumps({"type": "Message", "channel": CHANNEL, "content": "q" * 200})
        self.frame = encode_frame(OP_TEXT, msg, mask_key=b"\x01\x02\x03\x04")

    def phase(self, n):
        per_client = n // len(self.clients)
        sent = 0
        d = Deadline(PHASE_TIME, f"a phase of {n} messages did not finish")
        while sent < per_client:
            expected = []
            for c in self.clients:
                batch = [self.frame] * PING_EVERY
                ping_id = self.next_id
                self.next_id += 1
                batch.append(encode_frame(OP_TEXT, json.dumps({"type": "Ping", "id": ping_id})))
                c.send_raw(b"".join(batch))
                expected.append((c, ping_id))
            for c, ping_id in expected:
                r = c.read_json(deadline=d)
                assert r == {"type": "Pong", "id": ping_id}, (r, ping_id)
            sent += PING_EVERY
        self.messages += sent * len(self.clients)
        return sent * len(self.clients)

    def spans_ended(self):
        """Spans the server records for what was sent so far: 2 upgrades,
        3 per Message (handle, broadcast, fan-out), 2 per Ping (handle, send)."""
        return 2 + 3 * self.messages + 2 * self.next_id

    def close(self):
        for c in self.clients:
            c.send_close(1000)
            c.read_close()
            c.close()


class CollectorDown(unittest.TestCase):

    def test_failed_exports_are_counted(self):
        """Nothing listens at the endpoint: once the retries of a batch (and
        of a metrics export) run out, the failed requests and the spans and
        data points they carried are counted."""
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{refused_port(self)}",
               "OTEL_BSP_SCHEDULE_DELAY": "50",
               "OTEL_BSP_EXPORT_TIMEOUT": "300",   # one batch, retries included
               "OTEL_METRIC_EXPORT_INTERVAL": "100",
               "OTEL_METRIC_EXPORT_TIMEOUT": "300"}
        with WstraceServer("--shutdown-timeout", "1s", threads=2, env=env) as srv:
            with RawClient(srv.port) as c:
                c.handshake()
                c.send_json({"type": "Ping"})
                self.assertEqual(c.read_json(), {"type": "Pong"})
                c.send_close(1000)
                c.read_close()

            def failed():
                m = srv.metrics()
                return (m.value("wstrace_otlp_request_failures_total", signal="traces") > 0
                        and m.value("wstrace_otlp_request_failures_total", signal="metrics") > 0
                        and m.value("otel_sdk_exporter_span_exported_total",
                                    error_type="export_failed") > 0
                        and m.value("otel_sdk_exporter_metric_data_point_exported_total",
                                    error_type="export_failed") > 0)

            wait_until(failed, what="failed exports counted")
            m = srv.metrics()
            self.assertEqual(m.value("otel_sdk_exporter_span_exported_total"),
                             m.value("otel_sdk_exporter_span_exported_total",
                                     error_type="export_failed"), "nothing was exported")


class FullQueue(unittest.TestCase):

    def run_phases(self, queue_size, endpoint_port):
        srv = server(queue_size, endpoint_port)
        with srv:
            load = Load(srv.port)
            self.addCleanup(lambda: [c.close() for c in load.clients])
            load.phase(2000)  # warm-up: thread arenas, buffers, the span ring
            n1 = load.phase(MESSAGES_PER_PHASE)
            rss1 = rss_bytes(srv.pid)
            n2 = load.phase(MESSAGES_PER_PHASE)
            rss2 = rss_bytes(srv.pid)
            # Fan-out spans end on the thread that delivered last: wait until
            # every span of the load is recorded, then read the counters.
            want = load.spans_ended()
            wait_until(lambda: srv.metrics().value("otel_sdk_span_ended_total") >= want,
                       what=f"{want} spans ended")
            m = srv.metrics()
            load.close()
        return {"n1": n1, "n2": n2, "rss1": rss1, "rss2": rss2, "metrics": m, "ended": want}

    def test_full_queue_refused_endpoint(self):
        """Every export is refused (connection refused, retried with backoff)."""
        self.check_small_queue(self.run_phases(SMALL_QUEUE, refused_port(self)))

    def test_full_queue_stalled_endpoint(self):
        """The endpoint accepts TCP connections but never answers: the
        exporter waits for its timeout while the queue fills."""
        stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(stalled.close)
        stalled.bind(("127.0.0.1", 0))
        stalled.listen(16)  # never accept()ed: the kernel completes the handshakes
        self.check_small_queue(self.run_phases(SMALL_QUEUE, stalled.getsockname()[1]))

    def check_small_queue(self, r):
        m = r["metrics"]
        ended = m.value("otel_sdk_span_ended_total")
        full = m.value("otel_sdk_processor_span_processed_total", error_type="queue_full")
        failed = m.value("otel_sdk_exporter_span_exported_total", error_type="export_failed")
        queued = m.value("otel_sdk_processor_span_queue_size")
        exported = m.value("otel_sdk_exporter_span_exported_total") - failed
        print(f"\nsmall queue: {r['n1'] + r['n2']} messages, spans ended={ended} "
              f"dropped queue_full={full} export_failed={failed} queued={queued}; "
              f"RSS {r['rss1'] >> 20} MiB -> {r['rss2'] >> 20} MiB")
        self.assertEqual(m.value("otel_sdk_processor_span_queue_capacity"), SMALL_QUEUE)
        self.assertLessEqual(queued, SMALL_QUEUE)
        self.assertEqual(exported, 0, "nothing can be exported there")
        self.assertEqual(ended, r["ended"])
        self.assertGreater(full, 0)
        # Recorded = queued + in the batch being exported + dropped. A batch
        # is at most the queue size; the counters are read one after the
        # other, so a batch may also move between two reads.
        self.assertGreaterEqual(full + failed + queued + 2 * SMALL_QUEUE, ended)
        self.assertLessEqual(full + failed + queued, ended)
        self.assertLess(r["rss2"] - r["rss1"], RSS_BOUND,
                        f"RSS grew from {r['rss1']} to {r['rss2']} over a second phase")

    def test_control_a_huge_queue_does_grow(self):
        """The same load with a queue that never fills keeps every span:
        the RSS grows past the bound, so the bound above detects growth."""
        r = self.run_phases(1 << 20, refused_port(self))
        m = r["metrics"]
        print(f"\nhuge queue: queued={m.value('otel_sdk_processor_span_queue_size')}, "
              f"RSS {r['rss1'] >> 20} MiB -> {r['rss2'] >> 20} MiB")
        self.assertEqual(m.value("otel_sdk_processor_span_processed_total",
                                 error_type="queue_full"), 0)
        self.assertGreater(r["rss2"] - r["rss1"], RSS_BOUND)


if __name__ == "__main__":
    run_main()
