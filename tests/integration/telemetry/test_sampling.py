"""Head sampling and the abnormal-connection rule, checked in what reaches
the OTLP receiver (decoded with @opentelemetry/otlp-transformer's code).

- always_off and traceidratio 0: normal connections and their messages
  export nothing; connections that end abnormally (protocol error -> 1002,
  heartbeat timeout -> 4408, TCP dropped without a Close -> 1006) are
  exported anyway, each with a reconstructed websocket.upgrade parent that
  continues the client's traceparent, and keep their unsampled flags.
- parentbased_always_on: a client traceparent with flags 00 is not sampled
  (handshake or message level); 01 is; an abnormal end still exports.
- A message without a traceparent of its own starts a new trace, linked to
  its connection, that follows the connection's sampling decision
  (parentbased_always_on with a 00 handshake: none; parentbased_always_off
  with a 01 handshake: all).
- traceidratio: the decision is a function of the trace id alone (the low
  56 bits against ceil((1 - ratio) * 2^56), docs/TELEMETRY.md), the same
  for every span and connection of that trace, whatever the parent's flag;
  checked on both sides of the boundary for two ratios, and on the random
  ids of new traces.
- OTEL_SDK_DISABLED=true: nothing at all reaches the endpoint; /metrics
  still counts. service.name may come from OTEL_RESOURCE_ATTRIBUTES.
"""

import json
import math
import os
import unittest

from telemetry_support import (FLAG_IS_REMOTE, FLAG_SAMPLED, KIND_SERVER, STATUS_ERROR,
                               ExportingServer, metric_value, pings_until_4408, random_ids,
                               run_main, traceparent)
from wstrace_harness import OP_TEXT, RawClient

HEARTBEAT = ("--heartbeat-interval", "250ms", "--client-timeout", "1500ms")


def session(port, headers=None, path="/ws", messages=()):
    """A well-behaved client: handshake, request/reply, Close 1000."""
    with RawClient(port) as c:
        c.handshake(path=path, headers=headers)
        replies = []
        for m in messages:
            c.send_json(m)
            replies.append(c.read_json())
        c.send_close(1000)
        code, _ = c.read_close()
        c.expect_eof()
        assert code == 1000, code
        return replies


def protocol_error(port, headers=None):
    with RawClient(port) as c:
        c.handshake(headers=headers)
        c.send_frame(OP_TEXT, b'{"type":"Ping"}', mask=False)
        code, _ = c.read_close()
        c.expect_eof()
        assert code == 1002, code


def heartbeat_timeout(port, headers=None):
    with RawClient(port) as c:
        c.handshake(headers=headers)
        pings_until_4408(c)
        c.expect_eof()


def dropped_tcp(port, headers=None):
    """Handshake, a Ping answered, then the TCP connection closed without a
    Close frame (1006 on the server side)."""
    with RawClient(port) as c:
        c.handshake(headers=headers)
        c.send_json({"type": "Ping"})
        assert c.read_json() == {"type": "Pong"}


def wait_idle(srv):
    srv.wait_stats(lambda s: s["connections"]["active"] == 0, what="every connection closed")


def trace_id_with_low56(value):
    """A random trace id whose least significant 56 bits are `value`."""
    return os.urandom(9).hex() + f"{value:014x}"


def low56(trace_id):
    return int(trace_id[18:], 16)


def threshold(ratio):
    return math.ceil((1.0 - ratio) * (1 << 56))


class Base(unittest.TestCase):

    def assert_reconstructed(self, x, conn, trace_id=None, parent=None):
        """conn's exported parent is a websocket.upgrade rebuilt at the end."""
        up = x.by_id(conn.parent_span_id)
        self.assertEqual(up.name, "websocket.upgrade", up)
        self.assertEqual(up.kind, KIND_SERVER)
        self.assertEqual(up.trace_id, conn.trace_id)
        self.assertIs(up.attr("websocket.upgrade.reconstructed"), True, up)
        self.assertEqual(up.attr("http.response.status_code"), 101)
        self.assertEqual(up.attr("websocket.connection_id"), conn.attr("websocket.connection_id"))
        self.assertEqual(up.flags & FLAG_SAMPLED, 0, "keeps its trace flags (not sampled)")
        self.assertEqual(conn.flags & FLAG_SAMPLED, 0, "keeps its trace flags (not sampled)")
        if trace_id is not None:
            self.assertEqual(conn.trace_id, trace_id)
        self.assertEqual(up.parent_span_id, parent or "", up)
        # A client's traceparent makes the parent remote.
        self.assertEqual(up.flags & FLAG_IS_REMOTE, FLAG_IS_REMOTE if parent else 0, up)
        self.assertEqual(conn.status_code, STATUS_ERROR, conn)
        return up


class NothingSampled:
    """Mixin: a sampler that samples nothing (always_off, traceidratio 0)."""
    SAMPLER = None

    def test_only_abnormal_connections_are_exported(self):
        tn, pn = random_ids()    # a normal client with a sampled traceparent
        tm, pm = random_ids()    # its message-level traceparent (sampled)
        te, pe = random_ids()    # protocol error
        tk, pk = random_ids()    # TCP dropped
        with ExportingServer(self, *HEARTBEAT, env=self.SAMPLER) as es:
            port = es.srv.port
            session(port, headers=[("traceparent", traceparent(tn, pn))],
                    messages=[{"type": "Subscribe", "channel": "c"},
                              {"type": "Message", "channel": "c", "content": "m",
                               "traceparent": traceparent(tm, pm)},
                              {"type": "Ping", "id": 1}])
            session(port, path=f"/ws?traceparent={traceparent(tn, pn)}",
                    messages=[{"type": "Ping"}])
            protocol_error(port, headers=[("traceparent", traceparent(te, pe))])
            heartbeat_timeout(port)
            dropped_tcp(port, headers=[("traceparent", traceparent(tk, pk))])
            wait_idle(es.srv)
        x = es.export

        names = sorted(s.name for s in x.spans)
        self.assertEqual(names, ["websocket.connection"] * 3 + ["websocket.upgrade"] * 3,
                         x.spans)
        self.assertEqual(x.in_trace(tn), [], "a normal connection was exported")
        self.assertEqual(x.in_trace(tm), [], "a message span was exported")

        conns = {c.attr("websocket.close.code"): c for c in x.named("websocket.connection")}
        self.assertEqual(sorted(conns), [1002, 1006, 4408])
        self.assert_reconstructed(x, conns[1002], te, pe)
        self.assertEqual(conns[1002].event_names(), ["websocket.protocol_error"])
        self.assertEqual(conns[1002].attr("websocket.close.initiator"), "error")
        self.assert_reconstructed(x, conns[4408])
        self.assertEqual(conns[4408].event_names(), ["websocket.heartbeat_timeout"])
        self.assertEqual(conns[4408].attr("websocket.close.initiator"), "timeout")
        self.assert_reconstructed(x, conns[1006], tk, pk)
        self.assertEqual(conns[1006].attr("websocket.messages_received"), 1)

        m = x.last_metrics()
        self.assertEqual(metric_value(m, "websocket.connections", outcome="accepted"), 5)
        self.assertEqual(metric_value(m, "otel.sdk.span.ended"), 6)
        # Forced, not sampled: recorded only.
        self.assertEqual(metric_value(m, "otel.sdk.span.ended",
                                      **{"otel.span.sampling_result": "RECORD_ONLY"}), 6)
        self.assertEqual(metric_value(m, "otel.sdk.exporter.span.exported"), 6)


class AlwaysOff(NothingSampled, Base):
    SAMPLER = {"OTEL_TRACES_SAMPLER": "always_off"}


class TraceIdRatioZero(NothingSampled, Base):
    SAMPLER = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}


class ParentBased(Base):

    def test_client_flags_decide(self):
        # Also: service.name from OTEL_RESOURCE_ATTRIBUTES when
        # OTEL_SERVICE_NAME is not set.
        tu, pu = random_ids()    # client traceparent, flags 00
        tu2, pu2 = random_ids()  # message traceparent, flags 00
        ts, ps = random_ids()    # client traceparent, flags 01
        ts2, ps2 = random_ids()  # message traceparent, flags 01, on the unsampled connection
        tv, pv = random_ids()    # flags 00, ends with a protocol error
        env = {"OTEL_TRACES_SAMPLER": "parentbased_always_on",
               "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attributes,region=eu"}
        with ExportingServer(self, *HEARTBEAT, env=env) as es:
            port = es.srv.port
            session(port, headers=[("traceparent", traceparent(tu, pu, "00"))],
                    messages=[{"type": "Ping", "id": 1,
                               "traceparent": traceparent(tu2, pu2, "00")},
                              {"type": "Ping", "id": 2,
                               "traceparent": traceparent(ts2, ps2, "01")},
                              {"type": "Ping", "id": 3}])
            session(port, path=f"/ws?traceparent={traceparent(tu, pu, '00')}",
                    messages=[{"type": "Ping", "id": 4}])
            session(port, headers=[("traceparent", traceparent(ts, ps, "01"))],
                    messages=[{"type": "Ping", "id": 5}])
            protocol_error(port, headers=[("traceparent", traceparent(tv, pv, "00"))])
            wait_idle(es.srv)
        x = es.export

        for res in x.span_resources + x.metric_resources():
            self.assertEqual((res.get("service.name"), res.get("region")),
                             ("from-attributes", "eu"), res)
        self.assertEqual(x.in_trace(tu), [], "flags 00 on the handshake: not sampled")
        self.assertEqual(x.in_trace(tu2), [], "flags 00 on the message: not sampled")

        sampled = x.in_trace(ts)
        self.assertEqual(sorted(s.name for s in sampled),
                         ["websocket.connection", "websocket.upgrade"])
        for s in sampled:
            self.assertTrue(s.flags & FLAG_SAMPLED)
        [up] = [s for s in sampled if s.name == "websocket.upgrade"]
        self.assertEqual(up.parent_span_id, ps)

        # A sampled message on an unsampled connection: its own trace is sampled.
        cont = x.in_trace(ts2)
        self.assertEqual(sorted(s.name for s in cont),
                         ["websocket.message.handle", "websocket.message.send"])
        [h] = [s for s in cont if s.name == "websocket.message.handle"]
        self.assertEqual(h.parent_span_id, ps2)

        # Messages without a traceparent follow their connection's decision:
        # none from the two unsampled connections (ids 3 and 4), one from the
        # sampled one (id 5) -- a new trace, linked to that connection.
        [conn_s] = [s for s in sampled if s.name == "websocket.connection"]
        handles = x.named("websocket.message.handle")
        self.assertEqual(len(handles), 2, handles)
        [h5] = [s for s in handles if s.trace_id != ts2]
        self.assertEqual(h5.parent_span_id, "")
        self.assertNotEqual(h5.trace_id, ts)
        self.assertEqual(h5.links[0]["span_id"], conn_s.span_id)
        self.assertTrue(h5.flags & FLAG_SAMPLED)
        self.assertEqual(len(x.children(h5, "websocket.message.send")), 1)

        # Abnormal: exported although its parent said "not sampled".
        [conn_v] = x.named("websocket.connection", **{"websocket.close.code": 1002})
        self.assert_reconstructed(x, conn_v, tv, pv)
        self.assertEqual(len(x.in_trace(tv)), 2)


class ParentBasedAlwaysOff(Base):

    def test_messages_follow_their_connection(self):
        """Roots are never sampled, so a connection without traceparent is
        not, nor are its messages; a connection continuing a sampled
        traceparent is, and so are its messages without a traceparent of
        their own (their new traces inherit the connection's decision)."""
        ts, ps = random_ids()
        env = {"OTEL_TRACES_SAMPLER": "parentbased_always_off"}
        with ExportingServer(self, *HEARTBEAT, env=env) as es:
            port = es.srv.port
            session(port, messages=[{"type": "Ping", "id": 1},
                                    {"type": "Subscribe", "channel": "x"}])
            session(port, headers=[("traceparent", traceparent(ts, ps, "01"))],
                    messages=[{"type": "Ping", "id": 2},
                              {"type": "Subscribe", "channel": "y"}])
            wait_idle(es.srv)
        x = es.export
        [conn] = x.named("websocket.connection")
        self.assertEqual(conn.trace_id, ts)
        handles = x.named("websocket.message.handle")
        self.assertEqual(sorted(h.attr("websocket.message.type") for h in handles),
                         ["Ping", "Subscribe"])
        for h in handles:
            self.assertEqual(h.links[0]["span_id"], conn.span_id, h)
            self.assertNotEqual(h.trace_id, ts, "a new trace")
            self.assertTrue(h.flags & FLAG_SAMPLED, h)
        self.assertEqual(sorted(s.name for s in x.spans),
                         sorted(["websocket.upgrade", "websocket.connection"]
                                + ["websocket.message.handle", "websocket.message.send"] * 2))

    def test_a_reply_from_another_thread_is_traced_like_one_made_here(self):
        """Subscribed is answered by the channel's owner thread: at once when
        it is the connection's own, later when it is the other one. Either
        way its websocket.message.send is a child of the Subscribe's handle
        span. Twelve channels land on both threads (each is owned by one of
        the two, by a hash of its name)."""
        ts, ps = random_ids()
        channels = [f"owner-{i}" for i in range(12)]
        env = {"OTEL_TRACES_SAMPLER": "parentbased_always_off"}
        with ExportingServer(self, *HEARTBEAT, env=env, threads=2) as es:
            replies = session(es.srv.port, headers=[("traceparent", traceparent(ts, ps, "01"))],
                              messages=[{"type": "Subscribe", "channel": ch, "id": ch}
                                        for ch in channels])
            self.assertEqual([r["type"] for r in replies], ["Subscribed"] * len(channels))
            wait_idle(es.srv)
        x = es.export
        handles = x.named("websocket.message.handle")
        self.assertEqual(len(handles), len(channels))
        for h in handles:
            sends = x.children(h, "websocket.message.send")
            self.assertEqual([s.attr("websocket.message.type") for s in sends], ["Subscribed"],
                             f"the send span of the Subscribed reply to {h}")


class SdkDisabled(Base):

    def test_nothing_is_exported(self):
        """OTEL_SDK_DISABLED=true: no trace and no metric reaches the
        endpoint, not even an abnormal connection; /metrics still serves and
        /api/traces is empty."""
        te, pe = random_ids()
        env = {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_SAMPLER": "always_on"}
        with ExportingServer(self, *HEARTBEAT, env=env) as es:
            session(es.srv.port, messages=[{"type": "Ping"}])
            protocol_error(es.srv.port, headers=[("traceparent", traceparent(te, pe))])
            wait_idle(es.srv)
            m = es.srv.metrics()
            self.assertEqual(m.value("websocket_connections_total", outcome="accepted"), 2)
            self.assertEqual(m.value("websocket_messages_received_total", type="Ping"), 1)
            status, body = es.srv.admin_get("/api/traces")
            self.assertEqual((status, json.loads(body)["spans"]), (200, []))
        self.assertEqual(es.export.lines, [], "something was exported")


class TraceIdRatio(Base):

    def check_ratio(self, ratio):
        t = threshold(ratio)
        self.assertTrue(0 < t < (1 << 56))
        yes = trace_id_with_low56(t)          # on the boundary: sampled
        yes_max = trace_id_with_low56((1 << 56) - 1)
        no = trace_id_with_low56(t - 1)       # just under: not sampled
        no_zero = trace_id_with_low56(0)
        ids = {"yes": yes, "yes_max": yes_max, "no": no, "no_zero": no_zero}
        env = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(ratio)}
        with ExportingServer(self, *HEARTBEAT, env=env) as es:
            port = es.srv.port
            for name, tid in ids.items():
                # Two connections per trace id, with the parent's flag 01 and
                # 00 (a ratio sampler ignores the parent), and a message of
                # the same trace on each.
                for flags in ("01", "00"):
                    _, span = random_ids()
                    _, mspan = random_ids()
                    session(port, headers=[("traceparent", traceparent(tid, span, flags))],
                            messages=[{"type": "Ping",
                                       "traceparent": traceparent(tid, mspan, flags)}])
            # New traces: random ids, decided by the same rule.
            with RawClient(port) as c:
                c.handshake()
                for i in range(40):
                    c.send_json({"type": "Ping", "id": i})
                    self.assertEqual(c.read_json(), {"type": "Pong", "id": i})
                c.send_close(1000)
                c.read_close()
            wait_idle(es.srv)
        x = es.export

        for name in ("yes", "yes_max"):
            spans = x.in_trace(ids[name])
            # 2 x (upgrade, connection, handle, send)
            self.assertEqual(sorted(s.name for s in spans),
                             sorted(["websocket.upgrade", "websocket.connection",
                                     "websocket.message.handle",
                                     "websocket.message.send"] * 2),
                             f"ratio {ratio}: {name} trace {ids[name]}")
        for name in ("no", "no_zero"):
            self.assertEqual(x.in_trace(ids[name]), [],
                             f"ratio {ratio}: {name} trace {ids[name]} was sampled")
        # Every exported span (none here ends abnormally) obeys the rule.
        for s in x.spans:
            self.assertTrue(s.flags & FLAG_SAMPLED, s)
            self.assertGreaterEqual(low56(s.trace_id), t, f"ratio {ratio}: {s}")
        # The 40 new traces: children follow their handle's decision.
        handles = [s for s in x.named("websocket.message.handle") if not s.parent_span_id]
        for h in handles:
            self.assertEqual(len(x.children(h, "websocket.message.send")), 1, h)
        self.assertLessEqual(len(handles), 40)
        return len(handles)

    def test_ratio_is_a_function_of_the_trace_id(self):
        n_half = self.check_ratio(0.5)
        n_quarter = self.check_ratio(0.25)
        print(f"\nnew traces sampled: {n_half}/40 at 0.5, {n_quarter}/40 at 0.25")


if __name__ == "__main__":
    run_main(node=True)
