"""End to end: a scripted WebSocket session against wstrace exporting to
tests/integration/otlp/receiver.js, which decodes OTLP/HTTP with the
generated code of @opentelemetry/otlp-transformer 0.216.0 — nothing written
in this repository decodes what is checked here.

The session: two clients with a traceparent (handshake header, and
?traceparent= for the browser case), subscribe, publish with a
message-level traceparent, receive, Pings with ids, an invalid message, a
rejected upgrade (404), a protocol error (unmasked frame -> 1002), a
heartbeat timeout (a client that never answers Pings -> 4408), a slow
consumer (-> 4429), normal closes, and a client still connected at SIGTERM
(-> 1001). The server is then stopped with SIGTERM (which flushes
telemetry) and the decoded export is checked: span names and kinds,
parent/child and links, attributes, events, status, resource, OTLP headers,
and metric values against the script.

Also: a publication reaching a subscriber that is closing counts it as
dropped in its fan-out span; exports answered 503 are retried and nothing is
lost; the handshake's tracestate is carried by the upgrade and connection
spans.

Run once with OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf and once with
http/json (two test classes, two ctest entries).
"""

import asyncio
import json
import socket
import threading
import time
import unittest

from telemetry_support import (FLAG_HAS_IS_REMOTE, FLAG_IS_REMOTE, FLAG_SAMPLED, IO_TIMEOUT,
                               KIND_CONSUMER, KIND_PRODUCER, KIND_SERVER, STATUS_ERROR,
                               ExportingServer, OtlpReceiver, attrs, metric_points,
                               metric_value, pings_until_4408, random_ids, run_main, tmpdir,
                               traceparent, wstrace_version)
from wstrace_harness import (OP_PONG, OP_TEXT, AsyncTestCase, RawClient, WstraceServer,
                             check_message, check_subscribed, encode_frame, raw_subscribe,
                             recv_json, upgrade_request, wait_until, ws_connect)

HEARTBEAT = ("--heartbeat-interval", "250ms", "--client-timeout", "2s")


def kernel_send_buffer_max():
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 6 << 20


# A publication bigger than a socket's send buffer can grow (autotuned up to
# tcp_wmem[2]) plus the slow reader's fixed 4 KiB receive buffer: it can
# never be fully written to a reader that does not read.
BIG_CONTENT = min(max(8 << 20, kernel_send_buffer_max() + (2 << 20)), 48 << 20)
SIZES = ("--max-content-size", f"{BIG_CONTENT + 1024}", "--max-message-size",
         f"{BIG_CONTENT + (1 << 20)}", "--max-backpressure", "64KiB")


async def poll(fn, timeout=IO_TIMEOUT, what="condition"):
    """wait_until for coroutines: polls fn() (synchronous) with a deadline,
    yielding to the event loop in between so websockets clients keep
    answering the server's Pings."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def wait_published(srv, n):
    """Waits until n publications have been delivered on every thread
    (websocket.broadcast.recipients records each one when done)."""
    wait_until(lambda: srv.metrics().value("websocket_broadcast_recipients_count") >= n,
               what=f"{n} publications delivered")


_big_frame = []


def big_frame():
    """The masked frame of a BIG_CONTENT Message to "feed", built once (and
    before the clients connect: building it takes a while on a loaded
    machine, and a client silent for --client-timeout is closed)."""
    if not _big_frame:
        msg = json.dumps({"type": "Message", "channel": "feed", "content": "x" * BIG_CONTENT})
        _big_frame.append(encode_frame(OP_TEXT, msg))
    return _big_frame[0]


def flood_until_slow_consumer(test, srv, slow, pub, published_before):
    """pub publishes BIG_CONTENT messages to "feed", one at a time, until the
    server has closed the never-reading `slow` subscriber with 4429. Returns
    how many it published."""
    frame = big_frame()
    flood = 0
    while srv.metrics().value("websocket_slow_consumer_disconnects_total") < 1:
        test.assertLess(flood, 5, "the slow consumer was never disconnected")
        slow.send_frame(OP_PONG, b"")  # activity: no heartbeat timeout for it
        pub.send_raw(frame)
        flood += 1
        wait_published(srv, published_before + flood)
    return flood


class Session:
    """The scripted session and everything the checks need to know about it."""

    def __init__(self):
        self.ta, self.pa = random_ids()   # client A: traceparent header
        self.tb, self.pb = random_ids()   # client B: ?traceparent=
        self.tm, self.pm = random_ids()   # B's Message: message-level traceparent
        self.tp, self.pp = random_ids()   # A's second Ping: message-level traceparent
        self.tr, self.pr = random_ids()   # the rejected upgrade
        self.te, self.pe = random_ids()   # the protocol-error client
        self.tz, self.pz = random_ids()   # still connected at SIGTERM
        self.flood = 0                    # big publications until the 4429
        self.pings_before_timeout = 0
        self.rejected_bytes = 0           # the request of the rejected upgrade
        self.z_close = None               # what the SIGTERM client got
        self.z_thread = None


class OtlpSessionMixin:
    PROTOCOL = None

    async def test_session_is_exported_as_scripted(self):
        d = tmpdir(self, "wstrace-tel-e2e-")
        receiver = OtlpReceiver(d).start()
        self.addCleanup(receiver.stop)
        self.node_id = "e2e-" + self.PROTOCOL.replace("/", "-")
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": self.PROTOCOL,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_METRIC_EXPORT_INTERVAL": "300",
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            "OTEL_SERVICE_NAME": "wstrace-e2e",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-wstrace-test=e2e%20ok,authorization=Bearer%20t0k",
            # service.instance.id here must lose to --node-id; %20 is decoded.
            "OTEL_RESOURCE_ATTRIBUTES":
                "deployment.environment.name=ci,team=real%20time,service.instance.id=from-env",
        }
        srv = WstraceServer(*HEARTBEAT, "--node-id", self.node_id, *SIZES,
                            "--close-timeout", "30s", threads=2, env=env)
        srv.start()
        self.addCleanup(srv.kill)
        s = Session()
        try:
            await self.script(srv, receiver, s)
        except BaseException:
            print(srv.stderr_text()[-6000:])
            raise
        rc = srv.stop()
        s.z_thread.join(IO_TIMEOUT)
        self.assertEqual(s.z_close, (1001, "server shutting down"))
        self.assertEqual(rc, 0, "wstrace did not exit cleanly on SIGTERM:\n"
                         + srv.stderr_text()[-6000:])
        receiver.stop()
        export = receiver.export()
        self.check_export(export, s)

    async def test_fanout_counts_a_subscriber_it_could_not_deliver_to(self):
        """A publication reaching a subscriber that is closing (4429, still
        blocked on part of a frame) counts it in websocket.fanout.dropped.
        No heartbeat here: nothing but the publication is ever queued for the
        slow subscriber, so after the 4429 it stays blocked until it goes."""
        td, pd = random_ids()
        args = (*SIZES, "--close-timeout", "30s", "--heartbeat-interval", "0",
                "--client-timeout", "0")
        with ExportingServer(self, *args, protocol=self.PROTOCOL) as es:
            srv = es.srv
            big_frame()
            slow = RawClient(srv.port, rcvbuf=4096)
            pub = RawClient(srv.port)
            try:
                slow.handshake()
                feed = raw_subscribe(slow, "feed", offset=0)
                pub.handshake()
                flood = flood_until_slow_consumer(self, srv, slow, pub, published_before=0)
                dropped = srv.metrics().value("websocket_messages_dropped_total",
                                              reason="closing")
                pub.send_json({"type": "Message", "channel": "feed", "content": "missed",
                               "traceparent": traceparent(td, pd)})
                wait_published(srv, flood + 1)
                self.assertEqual(srv.metrics().value("websocket_messages_dropped_total",
                                                     reason="closing"), dropped + 1)
            finally:
                slow.close()
            pub.send_close(1000)
            pub.read_close()
            pub.close()
            srv.wait_stats(lambda st: st["connections"]["active"] == 0, what="all gone")
        x = es.export
        [h] = [h for h in x.named("websocket.message.handle") if h.trace_id == td]
        self.assertEqual((h.trace_id, h.parent_span_id), (td, pd))
        [bc] = x.children(h, "websocket.broadcast")
        [fo] = x.children(bc, "websocket.fanout")
        self.assertEqual(fo.attr("websocket.fanout.recipients"), 0, fo)
        self.assertEqual(fo.attr("websocket.fanout.dropped"), 1, fo)
        self.assertEqual(fo.status_code, STATUS_ERROR, fo)
        # Refused, yet it has its position in the stream: after the flood.
        self.assertEqual(fo.attr("websocket.stream.offset"), flood + 1, fo)
        self.assertEqual(fo.attr("messaging.message.id"), f"{feed['epoch']}:{flood + 1}", fo)
        # The big publications: the first ones reached it (the first onto its
        # empty queue, partly written), the last found the queue over
        # --max-backpressure and was refused with the 4429.
        floods = sorted((f for f in x.named("websocket.fanout") if f is not fo),
                        key=lambda f: f.start)
        self.assertGreaterEqual(len(floods), 2)
        for f in floods[:-1]:
            self.assertEqual(f.attr("websocket.fanout.recipients"), 1, f)
            self.assertEqual(f.attr("websocket.fanout.dropped"), 0, f)
        self.assertEqual(floods[-1].attr("websocket.fanout.recipients"), 0, floods[-1])
        self.assertEqual(floods[-1].attr("websocket.fanout.dropped"), 1, floods[-1])
        [conn] = x.named("websocket.connection", **{"websocket.close.code": 4429})
        self.assertEqual(conn.event_names(), ["websocket.slow_consumer"])

    async def test_export_is_retried_after_503(self):
        """The receiver answers its first 3 requests 503 (Retry-After: 0):
        the exporter retries, nothing is lost, retries are counted."""
        t, p = random_ids()
        with ExportingServer(self, protocol=self.PROTOCOL, fail_first=3) as es:
            with RawClient(es.srv.port) as c:
                c.handshake(headers=[("traceparent", traceparent(t, p))])
                c.send_json({"type": "Ping", "id": 1})
                self.assertEqual(c.read_json(), {"type": "Pong", "id": 1})
                c.send_close(1000)
                c.read_close()
            es.srv.wait_stats(lambda st: st["connections"]["active"] == 0, what="closed")
            wait_until(lambda: es.srv.metrics().value("wstrace_otlp_request_retries_total") >= 3,
                       what="3 retries")
            # ... and the refused batches went through in the end.
            wait_until(lambda: es.srv.metrics().value("otel_sdk_exporter_span_exported_total")
                       >= 4, what="4 spans exported")
            m = es.srv.metrics()
            self.assertEqual(m.value("wstrace_otlp_request_retries_total"), 3)
            self.assertEqual(m.value("wstrace_otlp_request_failures_total"), 0)
            self.assertEqual(m.value("otel_sdk_exporter_span_exported_total",
                                     error_type="export_failed"), 0)
            self.assertEqual(m.value("otel_sdk_processor_span_processed_total",
                                     error_type="queue_full"), 0)
        x = es.export
        self.assertEqual(sorted(sp.name for sp in x.spans),
                         ["websocket.connection", "websocket.message.handle",
                          "websocket.message.send", "websocket.upgrade"])
        self.assertEqual(len(x.in_trace(t)), 2)
        final = x.last_metrics()
        self.assertEqual(metric_value(final, "wstrace.otlp.request.retries"), 3)
        self.assertEqual(metric_value(final, "otel.sdk.exporter.span.exported"), 4)

    # A span started from a remote parent keeps the parent's tracestate
    # (W3C Trace Context; Span.trace_state in OTLP).
    def test_handshake_tracestate_is_propagated(self):
        t, p = random_ids()
        with ExportingServer(self, protocol=self.PROTOCOL) as es:
            with RawClient(es.srv.port) as c:
                c.handshake(headers=[("traceparent", traceparent(t, p)),
                                     ("tracestate", "vendor=abc,other=1")])
                c.send_close(1000)
                self.assertEqual(c.read_close()[0], 1000)
            es.srv.wait_stats(lambda st: st["connections"]["active"] == 0, what="closed")
        [up] = [u for u in es.export.named("websocket.upgrade") if u.trace_id == t]
        self.assertEqual(up.parent_span_id, p)
        [conn] = es.export.children(up, "websocket.connection")
        self.assertEqual((up.raw.get("traceState"), conn.raw.get("traceState")),
                         ("vendor=abc,other=1", "vendor=abc,other=1"))

    # -- the script ------------------------------------------------------------

    async def script(self, srv, receiver, s):
        # Phase 1, asyncio clients (they answer the server's Pings themselves).
        a = await ws_connect(srv.url("/ws"),
                             extra_headers={"traceparent": traceparent(s.ta, s.pa)})
        b = await ws_connect(srv.url("/ws?traceparent=" + traceparent(s.tb, s.pb)))

        await a.send(json.dumps({"type": "Subscribe", "channel": "room", "id": "s1"}))
        s.room = check_subscribed(await recv_json(a), "room", id="s1", offset=0)
        await b.send(json.dumps({"type": "Subscribe", "channel": "room"}))
        check_subscribed(await recv_json(b), "room", epoch=s.room["epoch"], offset=0)

        s.hello = json.dumps({"type": "Message", "channel": "room", "content": "hello",
                              "traceparent": traceparent(s.tm, s.pm)})
        await b.send(s.hello)
        check_message(await recv_json(a), "room", "hello", offset=1)
        check_message(await recv_json(b), "room", "hello", offset=1)

        await a.send(json.dumps({"type": "Ping", "id": 42}))
        s.pong1 = await asyncio.wait_for(a.recv(), IO_TIMEOUT)
        self.assertEqual(json.loads(s.pong1), {"type": "Pong", "id": 42})
        await a.send(json.dumps({"type": "Ping", "id": "p2",
                                 "traceparent": traceparent(s.tp, s.pp)}))
        s.pong2 = await asyncio.wait_for(a.recv(), IO_TIMEOUT)
        self.assertEqual(json.loads(s.pong2), {"type": "Pong", "id": "p2"})
        await a.send("{")
        err = await recv_json(a)
        self.assertEqual((err["type"], err["code"]), ("Error", "invalid_json"), err)

        # A heartbeat round trip (the clients answer Pings) and the periodic
        # exports, both before shutdown.
        await poll(lambda: srv.metrics().value("websocket_heartbeat_rtt_seconds_count") >= 1,
                   what="a heartbeat round trip")
        await poll(lambda: {"traces", "metrics"} <= {ln.get("signal") for ln in receiver.lines()},
                   what="periodic trace and metric exports before shutdown")

        await a.close()
        await b.close(code=1000, reason="bye")
        await poll(lambda: srv.stats()["connections"]["active"] == 0, what="A and B closed")

        # Phase 2, raw clients (synchronous: no asyncio client is open).
        # A rejected upgrade.
        rejected = [("traceparent", traceparent(s.tr, s.pr))]
        with RawClient(srv.port) as r:
            r.handshake(path="/nope", expect=404, headers=rejected)
        s.rejected_bytes = len(upgrade_request(srv.port, "/nope", rejected))

        # A protocol error: an unmasked frame.
        with RawClient(srv.port) as e:
            e.handshake(headers=[("traceparent", traceparent(s.te, s.pe))])
            e.send_frame(OP_TEXT, b'{"type":"Ping"}', mask=False)
            self.assertEqual(e.read_close()[0], 1002)
            e.expect_eof()

        # A heartbeat timeout: Pings never answered.
        with RawClient(srv.port) as h:
            h.handshake()
            s.pings_before_timeout = pings_until_4408(h)
            h.expect_eof()
        self.assertGreaterEqual(s.pings_before_timeout, 1)

        # A slow consumer: subscribed, never reads, tiny receive buffer; one
        # publication bigger than the kernel can buffer for it: 4429.
        big_frame()
        slow = RawClient(srv.port, rcvbuf=4096)
        pub = RawClient(srv.port)
        try:
            slow.handshake()
            s.feed = raw_subscribe(slow, "feed", offset=0)
            pub.handshake()
            s.flood = flood_until_slow_consumer(self, srv, slow, pub, published_before=1)
        finally:
            slow.close()  # unread data: the server sees a reset
        pub.send_close(1000)
        self.assertEqual(pub.read_close()[0], 1000)
        pub.expect_eof()
        pub.close()
        srv.wait_stats(lambda st: st["connections"]["active"] == 0, what="every client gone")

        # A client still connected at SIGTERM: it gets Close 1001 and answers
        # it (from a thread, while the test waits for the server to exit).
        z = RawClient(srv.port)
        self.addCleanup(z.close)
        z.handshake(headers=[("traceparent", traceparent(s.tz, s.pz))])

        def answer_shutdown():
            try:
                s.z_close = z.read_close()
                z.send_close(s.z_close[0])
                z.expect_eof()
            except Exception as e:  # reported by the main thread
                s.z_close = e

        s.z_thread = threading.Thread(target=answer_shutdown, daemon=True)
        s.z_thread.start()

    # -- the checks --------------------------------------------------------------

    def check_export(self, x, s):
        self.assertEqual(x.errors, [], "the receiver could not decode a request")
        self.assertTrue(x.trace_requests, "no trace export")
        self.assertTrue(x.metric_requests, "no metric export")
        want_enc = "json" if self.PROTOCOL == "http/json" else "protobuf"
        want_ct = "application/json" if want_enc == "json" else "application/x-protobuf"
        for ln in x.trace_requests + x.metric_requests:
            self.assertEqual(ln["encoding"], want_enc)
            self.assertTrue(ln["headers"]["content-type"].startswith(want_ct), ln["headers"])
            # OTEL_EXPORTER_OTLP_HEADERS, percent-decoded.
            self.assertEqual(ln["headers"].get("x-wstrace-test"), "e2e ok", ln["headers"])
            self.assertEqual(ln["headers"].get("authorization"), "Bearer t0k", ln["headers"])

        self.check_resource(x)
        self.check_span_basics(x)
        conns = self.check_connections(x, s)
        self.check_messages(x, s, conns)
        self.check_metrics(x, s)

    def check_resource(self, x):
        version = wstrace_version()
        for res in x.span_resources + x.metric_resources():
            self.assertEqual(res.get("service.name"), "wstrace-e2e", res)
            self.assertEqual(res.get("service.instance.id"), self.node_id, res)
            self.assertEqual(res.get("service.version"), version, res)
            self.assertEqual(res.get("host.name"), socket.gethostname(), res)
            self.assertEqual(res.get("deployment.environment.name"), "ci", res)
            self.assertEqual(res.get("team"), "real time", res)
            self.assertEqual(res.get("telemetry.sdk.language"), "cpp", res)
            self.assertEqual(res.get("telemetry.sdk.name"), "wstrace", res)
        for sp in x.spans:
            self.assertEqual(sp.scope.get("name"), "wstrace")

    def check_span_basics(self, x):
        names = {sp.name for sp in x.spans}
        self.assertEqual(names, {"websocket.upgrade", "websocket.connection",
                                 "websocket.message.handle", "websocket.message.send",
                                 "websocket.broadcast", "websocket.fanout"})
        kinds = {"websocket.upgrade": KIND_SERVER, "websocket.connection": KIND_SERVER,
                 "websocket.message.handle": KIND_CONSUMER,
                 "websocket.message.send": KIND_PRODUCER,
                 "websocket.broadcast": KIND_PRODUCER, "websocket.fanout": KIND_CONSUMER}
        ids = set()
        for sp in x.spans:
            self.assertEqual(sp.kind, kinds[sp.name], sp)
            self.assertRegex(sp.trace_id, r"^[0-9a-f]{32}$")
            self.assertRegex(sp.span_id, r"^[0-9a-f]{16}$")
            self.assertNotEqual(sp.trace_id, "0" * 32)
            self.assertNotEqual(sp.span_id, "0" * 16)
            self.assertNotIn((sp.trace_id, sp.span_id), ids, f"span exported twice: {sp}")
            ids.add((sp.trace_id, sp.span_id))
            self.assertLessEqual(sp.start, sp.end, sp)
            self.assertGreater(sp.start, 0, sp)
            self.assertTrue(sp.flags & FLAG_SAMPLED, sp)
            self.assertTrue(sp.flags & FLAG_HAS_IS_REMOTE, sp)
            if sp.name in ("websocket.message.handle", "websocket.message.send",
                           "websocket.broadcast", "websocket.fanout"):
                self.assertEqual(sp.attr("messaging.system"), "wstrace", sp)

    def check_connections(self, x, s):
        ups = x.named("websocket.upgrade")
        conns = x.named("websocket.connection")
        # A, B, rejected, error, timeout, slow, pub, shutdown
        self.assertEqual(len(ups), 8, ups)
        self.assertEqual(len(conns), 7, conns)
        # Every connection is the child of an accepted upgrade of its trace.
        for c in conns:
            up = x.by_id(c.parent_span_id)
            self.assertEqual(up.name, "websocket.upgrade", c)
            self.assertEqual(up.trace_id, c.trace_id)
            self.assertEqual(up.attr("http.response.status_code"), 101)
            self.assertEqual(up.attr("websocket.connection_id"), c.attr("websocket.connection_id"))
            self.assertLessEqual(up.start, c.start)
            self.assertEqual(c.attr("network.peer.address"), "127.0.0.1", c)
            self.assertEqual(up.attr("network.peer.address"), "127.0.0.1", up)
            for key in ("websocket.messages_sent", "websocket.messages_received",
                        "websocket.bytes_sent", "websocket.bytes_received", "websocket.errors",
                        "websocket.close.code", "websocket.close.reason",
                        "websocket.close.initiator"):
                self.assertIn(key, c.attributes, c)
            self.assertGreater(c.attr("websocket.bytes_received"), 0, c)
        self.assertEqual(len({c.attr("websocket.connection_id") for c in conns}), 7)

        # A: traceparent header.
        up_a = [u for u in ups if u.trace_id == s.ta]
        self.assertEqual(len(up_a), 1, ups)
        up_a = up_a[0]
        self.assertEqual(up_a.parent_span_id, s.pa, "upgrade's parent = the client's span")
        self.assertEqual(up_a.flags & FLAG_IS_REMOTE, FLAG_IS_REMOTE, "remote parent")
        self.assertEqual(up_a.attr("url.path"), "/ws")
        self.assertEqual(up_a.attr("http.request.method"), "GET")
        self.assertNotEqual(up_a.status_code, STATUS_ERROR)
        [conn_a] = x.children(up_a, "websocket.connection")
        self.assertEqual(conn_a.flags & FLAG_IS_REMOTE, 0, "the connection's parent is local")
        self.assertEqual(conn_a.attr("websocket.close.code"), 1000)
        self.assertEqual(conn_a.attr("websocket.close.initiator"), "client")
        # In: Subscribe, Ping, Ping, invalid. Out: Subscribed, Message, Pong, Pong, Error.
        self.assertEqual(conn_a.attr("websocket.messages_received"), 4, conn_a)
        self.assertEqual(conn_a.attr("websocket.messages_sent"), 5, conn_a)
        self.assertEqual(conn_a.attr("websocket.errors"), 1, conn_a)
        self.assertGreater(conn_a.attr("websocket.bytes_sent"), 0)
        self.assertNotEqual(conn_a.status_code, STATUS_ERROR, conn_a)
        self.assertEqual(conn_a.events, [], conn_a)

        # B: ?traceparent= query parameter.
        [up_b] = [u for u in ups if u.trace_id == s.tb]
        self.assertEqual(up_b.parent_span_id, s.pb)
        [conn_b] = x.children(up_b, "websocket.connection")
        self.assertEqual(conn_b.attr("websocket.close.code"), 1000)
        self.assertEqual(conn_b.attr("websocket.close.reason"), "bye")
        self.assertEqual(conn_b.attr("websocket.close.initiator"), "client")
        self.assertEqual(conn_b.attr("websocket.messages_received"), 2, conn_b)  # Subscribe, Message
        self.assertEqual(conn_b.attr("websocket.messages_sent"), 2, conn_b)      # Subscribed, Message
        self.assertEqual(conn_b.attr("websocket.errors"), 0)

        # The rejected upgrade: a span of its own, 404, not a server error.
        [up_r] = [u for u in ups if u.trace_id == s.tr]
        self.assertEqual(up_r.parent_span_id, s.pr)
        self.assertEqual(up_r.attr("http.response.status_code"), 404)
        self.assertEqual(up_r.attr("url.path"), "/nope")
        self.assertEqual(up_r.attr("error.type"), "404")
        self.assertNotEqual(up_r.status_code, STATUS_ERROR, "4xx is the client's fault")
        self.assertEqual(x.children(up_r), [])

        # The protocol error: 1002, event, error status.
        [up_e] = [u for u in ups if u.trace_id == s.te]
        self.assertEqual(up_e.parent_span_id, s.pe)
        [conn_e] = x.children(up_e, "websocket.connection")
        self.assertEqual(conn_e.attr("websocket.close.code"), 1002)
        self.assertEqual(conn_e.attr("websocket.close.initiator"), "error")
        self.assertTrue(conn_e.attr("websocket.close.reason"), conn_e)
        self.assertEqual(conn_e.attr("websocket.errors"), 1)
        self.assertEqual(conn_e.attr("websocket.messages_received"), 0)
        self.assertEqual(conn_e.status_code, STATUS_ERROR, conn_e)
        self.assertEqual(conn_e.event_names(), ["websocket.protocol_error"], conn_e)
        ev = conn_e.events[0]["attributes"]
        self.assertEqual(ev.get("websocket.close.code"), 1002, ev)
        self.assertTrue(ev.get("error.type"), ev)
        self.assertTrue(ev.get("exception.message"), ev)
        self.assertTrue(conn_e.start <= conn_e.events[0]["time"] <= conn_e.end, conn_e)

        # The heartbeat timeout: 4408, event, error status; no traceparent,
        # so its upgrade is a root span.
        [conn_h] = [c for c in conns if c.attr("websocket.close.code") == 4408]
        up_h = x.by_id(conn_h.parent_span_id)
        self.assertEqual(up_h.parent_span_id, "", up_h)
        self.assertEqual(conn_h.attr("websocket.close.initiator"), "timeout")
        self.assertEqual(conn_h.attr("websocket.close.reason"), "heartbeat timeout")
        self.assertEqual(conn_h.attr("websocket.messages_received"), 0)
        self.assertEqual(conn_h.attr("websocket.messages_sent"), 0)
        # Its only output was the Pings (10 bytes each).
        self.assertGreaterEqual(conn_h.attr("websocket.bytes_sent"), 10 * s.pings_before_timeout)
        self.assertEqual(conn_h.status_code, STATUS_ERROR, conn_h)
        self.assertEqual(conn_h.event_names(), ["websocket.heartbeat_timeout"], conn_h)
        self.assertGreater(conn_h.events[0]["attributes"].get("websocket.silent_ms", 0), 0)

        # The slow consumer: 4429, event, error status.
        [conn_s] = [c for c in conns if c.attr("websocket.close.code") == 4429]
        self.assertEqual(conn_s.attr("websocket.close.initiator"), "server")
        self.assertEqual(conn_s.status_code, STATUS_ERROR, conn_s)
        self.assertEqual(conn_s.event_names(), ["websocket.slow_consumer"], conn_s)
        self.assertEqual(conn_s.events[0]["attributes"].get("websocket.max_backpressure"),
                         64 * 1024)
        self.assertEqual(conn_s.attr("websocket.messages_received"), 1)  # Subscribe
        # Subscribed and the flood but its last publication, refused: the one
        # that found the queue over --max-backpressure (4429).
        self.assertEqual(conn_s.attr("websocket.messages_sent"), s.flood)

        # The publisher: a normal close.
        # Closed by the shutdown (ended after SIGTERM, still exported).
        [up_z] = [u for u in ups if u.trace_id == s.tz]
        self.assertEqual(up_z.parent_span_id, s.pz)
        [conn_z] = x.children(up_z, "websocket.connection")
        self.assertEqual(conn_z.attr("websocket.close.code"), 1001)
        self.assertEqual(conn_z.attr("websocket.close.initiator"), "shutdown")
        self.assertEqual(conn_z.attr("websocket.close.reason"), "server shutting down")
        self.assertNotEqual(conn_z.status_code, STATUS_ERROR, "a shutdown is not an error")
        self.assertEqual(conn_z.events, [])

        [conn_p] = [c for c in conns
                    if c not in (conn_a, conn_b, conn_e, conn_h, conn_s, conn_z)]
        self.assertEqual(conn_p.attr("websocket.close.code"), 1000)
        self.assertEqual(conn_p.attr("websocket.messages_received"), s.flood)
        self.assertNotEqual(conn_p.status_code, STATUS_ERROR)
        return {"a": conn_a, "b": conn_b, "e": conn_e, "h": conn_h, "slow": conn_s,
                "pub": conn_p}

    def check_messages(self, x, s, conns):
        handles = x.named("websocket.message.handle")
        # Only current messaging.operation.type values (semconv: "publish"
        # and "deliver" are deprecated): consumers process, producers send.
        for sp in x.spans:
            op = sp.attr("messaging.operation.type")
            if op is not None:
                self.assertEqual(op, "send" if sp.kind == KIND_PRODUCER else "process", sp)
        # A: Subscribe, Ping, Ping, invalid; B: Subscribe, Message; slow:
        # Subscribe; pub: the flood.
        self.assertEqual(len(handles), 4 + 2 + 1 + s.flood)
        for h in handles:
            self.assertEqual(h.attr("messaging.operation.type"), "process", h)
            self.assertGreater(h.attr("messaging.message.body.size"), 0, h)
            if not h.parent_span_id:
                # No message traceparent: a new trace, linked to its connection.
                self.assertEqual(len(h.links), 1, h)
                conn = x.by_id(h.links[0]["span_id"])
                self.assertEqual(conn.name, "websocket.connection")
                self.assertEqual(h.links[0]["trace_id"], conn.trace_id)
                self.assertEqual(conn.attr("websocket.connection_id"),
                                 h.attr("websocket.connection_id"))
                self.assertNotEqual(h.trace_id, conn.trace_id, "a new trace")

        # B's Message: handle -> broadcast -> fanout, all in the message's trace.
        [h_m] = [h for h in handles if h.trace_id == s.tm]
        self.assertEqual(h_m.parent_span_id, s.pm, "handle's parent = the message traceparent")
        self.assertEqual(h_m.flags & FLAG_IS_REMOTE, FLAG_IS_REMOTE)
        self.assertEqual(h_m.attr("websocket.message.type"), "Message")
        self.assertEqual(h_m.attr("messaging.destination.name"), "room")
        self.assertEqual(h_m.attr("messaging.message.body.size"), len(s.hello.encode()))
        self.assertEqual(h_m.attr("websocket.connection_id"),
                         conns["b"].attr("websocket.connection_id"))
        self.assertNotEqual(h_m.status_code, STATUS_ERROR)
        [bc] = x.children(h_m, "websocket.broadcast")
        self.assertEqual(x.children(h_m), [bc], "a publish sends no direct reply")
        self.assertEqual(bc.attr("messaging.destination.name"), "room")
        # Current semantic conventions: "publish" is deprecated for "send".
        self.assertEqual(bc.attr("messaging.operation.type"), "send")
        self.assertEqual(bc.attr("messaging.message.body.size"), len("hello"))
        [fo] = x.children(bc, "websocket.fanout")
        self.assertEqual(x.children(bc), [fo])
        self.assertEqual(fo.attr("messaging.destination.name"), "room")
        self.assertEqual(fo.attr("messaging.operation.type"), "process")
        self.assertEqual(fo.attr("messaging.message.body.size"), len("hello"))
        self.assertEqual(fo.attr("websocket.fanout.recipients"), 2)
        self.assertEqual(fo.attr("websocket.fanout.dropped"), 0)
        # The publication's position: the offset A and B got it at.
        self.assertEqual(fo.attr("messaging.message.id"), f"{s.room['epoch']}:1", fo)
        self.assertEqual(fo.attr("websocket.stream.offset"), 1, fo)
        self.assertNotEqual(fo.status_code, STATUS_ERROR)
        self.assertEqual(len(x.in_trace(s.tm)), 3, x.in_trace(s.tm))

        # A's Ping without traceparent: new trace linked to A's connection;
        # the Pong is a send span, child of the handle.
        conn_a = conns["a"]
        a_id = conn_a.attr("websocket.connection_id")
        a_handles = [h for h in handles if h.attr("websocket.connection_id") == a_id]
        self.assertEqual(sorted(h.attr("websocket.message.type") for h in a_handles),
                         sorted(["Subscribe", "Ping", "Ping", "invalid"]))
        [ping1] = [h for h in a_handles
                   if h.attr("websocket.message.type") == "Ping" and not h.parent_span_id]
        self.assertEqual(ping1.links[0]["span_id"], conn_a.span_id)
        self.assertEqual(ping1.links[0]["trace_id"], s.ta)
        [send1] = x.children(ping1)
        self.assertEqual(send1.name, "websocket.message.send")
        self.assertEqual(send1.attr("websocket.message.type"), "Pong")
        self.assertEqual(send1.attr("messaging.operation.type"), "send")
        self.assertEqual(send1.attr("messaging.message.body.size"), len(s.pong1.encode()))
        self.assertTrue(ping1.start <= send1.start <= send1.end <= ping1.end)

        # A's Ping with a traceparent.
        [ping2] = [h for h in a_handles if h.trace_id == s.tp]
        self.assertEqual(ping2.parent_span_id, s.pp)
        self.assertEqual(ping2.links, [], "a continued trace needs no link")
        [send2] = x.children(ping2, "websocket.message.send")
        self.assertEqual(send2.attr("messaging.message.body.size"), len(s.pong2.encode()))

        # A's Subscribe: destination and its Subscribed reply.
        [sub_a] = [h for h in a_handles if h.attr("websocket.message.type") == "Subscribe"]
        self.assertEqual(sub_a.attr("messaging.destination.name"), "room")
        [sub_send] = x.children(sub_a)
        self.assertEqual(sub_send.attr("websocket.message.type"), "Subscribed")

        # The invalid message: error status on the handle, Error reply.
        [bad] = [h for h in a_handles if h.attr("websocket.message.type") == "invalid"]
        self.assertEqual(bad.status_code, STATUS_ERROR, bad)
        self.assertEqual(bad.attr("error.type"), "invalid_json")
        [bad_send] = x.children(bad)
        self.assertEqual(bad_send.attr("websocket.message.type"), "Error")

        # Every broadcast has exactly one fan-out (one node) and vice versa.
        bcs = x.named("websocket.broadcast")
        self.assertEqual(len(bcs), 1 + s.flood)
        for b in bcs:
            self.assertEqual(x.by_id(b.parent_span_id).name, "websocket.message.handle")
            self.assertEqual(len(x.children(b, "websocket.fanout")), 1, b)
        for f in x.named("websocket.fanout"):
            self.assertEqual(x.by_id(f.parent_span_id).name, "websocket.broadcast")
            self.assertEqual(f.attr("websocket.node_id"), self.node_id)
        # The flood's fan-outs: "feed" offsets 1..flood, in the slow
        # subscriber's epoch, one each.
        feed = sorted((f for f in x.named("websocket.fanout")
                       if f.attr("messaging.destination.name") == "feed"),
                      key=lambda f: f.attr("websocket.stream.offset"))
        self.assertEqual([f.attr("websocket.stream.offset") for f in feed],
                         list(range(1, s.flood + 1)))
        for f in feed:
            self.assertEqual(f.attr("messaging.message.id"),
                             f"{s.feed['epoch']}:{f.attr('websocket.stream.offset')}", f)
        for sd in x.named("websocket.message.send"):
            self.assertEqual(x.by_id(sd.parent_span_id).name, "websocket.message.handle")

    def check_metrics(self, x, s):
        m = x.last_metrics()

        def v(name, **labels):
            value = metric_value(m, name, **labels)
            self.assertIsNotNone(value, f"metric {name} missing")
            return value

        # Types: counters are monotonic cumulative sums, histograms explicit.
        for name in ("websocket.connections", "websocket.messages.received",
                     "websocket.messages.sent", "websocket.heartbeat.timeouts",
                     "websocket.errors", "websocket.messages.broadcasted",
                     "websocket.bytes.sent", "websocket.bytes.received"):
            kind, _ = metric_points(m[name])
            self.assertEqual(kind, "sum", name)
            self.assertTrue(m[name]["sum"].get("isMonotonic"), name)
            self.assertEqual(m[name]["sum"].get("aggregationTemporality"), 2, name)  # cumulative
        for name in ("websocket.delivery.latency", "websocket.heartbeat.rtt",
                     "websocket.connection.duration", "websocket.broadcast.recipients"):
            self.assertEqual(metric_points(m[name])[0], "histogram", name)
        self.assertEqual(m["websocket.delivery.latency"]["unit"], "s")

        self.assertEqual(v("websocket.connections", outcome="accepted"), 7)
        self.assertEqual(v("websocket.connections", outcome="rejected", reason="not_found"), 1)
        self.assertEqual(v("websocket.connections", outcome="rejected"), 1)
        self.assertEqual(v("websocket.connections.active"), 0)
        self.assertEqual(v("websocket.connection.duration"), 7)

        self.assertEqual(v("websocket.messages.received", type="Subscribe"), 3)
        self.assertEqual(v("websocket.messages.received", type="Ping"), 2)
        self.assertEqual(v("websocket.messages.received", type="invalid"), 1)
        self.assertEqual(v("websocket.messages.received", type="Message"), 1 + s.flood)
        self.assertEqual(v("websocket.messages.received", type="Unsubscribe"), 0)
        self.assertEqual(v("websocket.messages.sent", type="Subscribed"), 3)
        self.assertEqual(v("websocket.messages.sent", type="Pong"), 2)
        self.assertEqual(v("websocket.messages.sent", type="Error"), 1)
        delivered = v("websocket.messages.sent", type="Message")
        # hello to A and B, the flood to the slow one but the refused last one
        self.assertEqual(delivered, 1 + s.flood)

        self.assertEqual(v("websocket.messages.broadcasted"), 1 + s.flood)
        self.assertEqual(v("websocket.broadcast.recipients"), 1 + s.flood)
        # One latency sample per message *written* to a subscriber: hello to
        # A and B, but not the flood frame the slow consumer was closed
        # with (never fully written, so never delivered).
        latency = v("websocket.delivery.latency")
        self.assertGreaterEqual(latency, 2)
        self.assertLess(latency, delivered, "latency observed for a frame never written")
        self.assertGreaterEqual(v("websocket.heartbeat.rtt"), 1)
        self.assertEqual(v("websocket.heartbeat.timeouts"), 1)
        self.assertEqual(v("websocket.slow_consumer.disconnects"), 1)
        self.assertEqual(v("websocket.errors", **{"error.type": "protocol"}), 1)
        self.assertEqual(v("websocket.errors", **{"error.type": "client"}), 1)
        self.assertEqual(v("websocket.channel.subscriptions"), 3)
        self.assertEqual(v("websocket.subscriptions.active"), 0)
        # 0, or 1 when a heartbeat Ping (250 ms) found the slow consumer's
        # queue over the limit and closed it with 4429 between the flood's
        # check and its next publication, which then found it closing (seen
        # under ASan, where each flood step takes longer than a heartbeat).
        self.assertLessEqual(v("websocket.messages.dropped", reason="closing"), 1)

        # The metrics agree with the connection spans' counters.
        conns = x.named("websocket.connection")
        self.assertEqual(v("websocket.messages.sent"),
                         sum(c.attr("websocket.messages_sent") for c in conns))
        self.assertEqual(v("websocket.messages.received"),
                         sum(c.attr("websocket.messages_received") for c in conns))
        self.assertEqual(v("websocket.bytes.sent"),
                         sum(c.attr("websocket.bytes_sent") for c in conns))
        # Bytes read include the handshakes, and the rejected one's.
        self.assertEqual(v("websocket.bytes.received"),
                         sum(c.attr("websocket.bytes_received") for c in conns) + s.rejected_bytes)

        # The SDK's own (semantic-convention names): every span recorded was
        # processed and exported, none dropped or failed.
        exported = "otel.sdk.exporter.span.exported"
        self.assertEqual(v(exported), len(x.spans))
        self.assertEqual(v(exported, **{"error.type": "export_failed"}), 0)
        self.assertEqual(v(exported, **{"otel.component.type": self.SPAN_EXPORTER}), len(x.spans))
        processed = "otel.sdk.processor.span.processed"
        self.assertEqual(v(processed), len(x.spans))
        self.assertEqual(v(processed, **{"otel.component.type": "batching_span_processor"}),
                         len(x.spans))
        self.assertEqual(v("otel.sdk.span.ended"), len(x.spans))
        self.assertEqual(v("otel.sdk.span.ended",
                           **{"otel.span.sampling_result": "RECORD_ONLY"}),
                         len([sp for sp in x.spans if not sp.flags & FLAG_SAMPLED]))
        self.assertGreaterEqual(v("otel.sdk.exporter.metric_data_point.exported"), 1)
        self.assertEqual(v("otel.sdk.processor.span.queue.capacity"), 2048)
        for old in ("otel.sdk.span.exported", "otel.sdk.span.dropped", "otel.sdk.metric.exports",
                    "otel.sdk.exporter.errors", "otel.sdk.span.queue.size"):
            self.assertNotIn(old, m)
        self.assertGreater(v("process.memory.usage"), 0)
        # Data points carry no attributes that were not declared.
        for p in metric_points(m["websocket.connections"])[1]:
            self.assertIn(attrs(p.get("attributes")).get("outcome"), ("accepted", "rejected"))


class OtlpProtobuf(OtlpSessionMixin, AsyncTestCase):
    PROTOCOL = "http/protobuf"
    SPAN_EXPORTER = "otlp_http_span_exporter"


class OtlpJson(OtlpSessionMixin, AsyncTestCase):
    PROTOCOL = "http/json"
    SPAN_EXPORTER = "otlp_http_json_span_exporter"


if __name__ == "__main__":
    run_main(node=True)
