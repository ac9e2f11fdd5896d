"""/api/traces (the in-memory ring of recent spans, for users with no
collector) and trace ids in logs.

- After a scripted session the ring holds its spans: filtering by trace_id
  returns exactly that trace's spans with the right parents, kinds and
  attributes; limit= bounds the answer (most recent first); an unknown or
  malformed trace id gives an empty list.
- A malformed traceparent (handshake or message) is ignored: new traces.
- Span attributes: user.id from a verified JWT, websocket.duration_ms,
  network.peer.port, user_agent.original on the connection/upgrade spans;
  a rejected upgrade has websocket.rejection.reason and error.type, status
  Error for a 5xx (503 at --max-connections) and not for a 4xx (404).
- A binary frame on /ws gets a websocket.message.handle span (type binary,
  error.type unsupported_frame, status Error) and its Error reply a send
  span; messages on /echo get no message spans (docs/TELEMETRY.md).
- The rest of the admin API: /api/connections pages with limit/offset
  (ordered by id, limits clamped to 1..1000); the / page links every
  endpoint, and every link answers.
- A log line written inside a span carries that span's trace_id and
  span_id (--log-format json): a Ping that pushes its own connection over
  --max-backpressure makes the server log "slow consumer disconnected"
  while that Ping's websocket.message.handle span is current. Lines written
  outside any span carry none. The same holds for spans that are not
  sampled (traceparent flags 00, parentbased_always_off): their ids can
  still be looked for upstream; that unsampled 4429 connection is in the
  ring anyway (the abnormal-connection rule).
"""

import json
import re
import unittest

from telemetry_support import random_ids, run_main, traceparent
from wstrace_harness import (OP_BINARY, OP_TEXT, RawClient, WstraceServer, check_message,
                             encode_frame, make_jwt, raw_subscribe)


def api_traces(srv, query=""):
    status, body = srv.admin_get("/api/traces" + query)
    assert status == 200, (status, body)
    doc = json.loads(body)
    return doc["spans"]


def by_name(spans):
    out = {}
    for s in spans:
        out.setdefault(s["name"], []).append(s)
    return out


def slow_consumer_inside_a_span(test, srv, flags="01"):
    """A client that never reads sends a burst of Pings (one trace id, long
    ids) in one write: their Pongs are corked on the connection, so within
    one read the queue passes --max-backpressure inside a Ping's handle
    span. Returns that trace id."""
    tl, _ = random_ids()
    burst = []
    for i in range(100):
        _, span = random_ids()
        burst.append({"type": "Ping", "id": f"{i:04d}" + "i" * 200,
                      "traceparent": traceparent(tl, span, flags)})
    with RawClient(srv.port) as c:
        c.handshake()
        c.send_raw(b"".join(encode_frame(OP_TEXT, json.dumps(m)) for m in burst))
        code, _ = c.read_close()
        test.assertEqual(code, 4429)
    return tl


class ApiTraces(unittest.TestCase):

    def test_ring_holds_the_session_and_filters_by_trace_id(self):
        ta, pa = random_ids()
        tm, pm = random_ids()
        with WstraceServer("--log-level", "debug", threads=2) as srv:
            with RawClient(srv.port) as c:
                c.handshake(headers=[("traceparent", traceparent(ta, pa))])
                r = raw_subscribe(c, "ring")
                c.send_json({"type": "Message", "channel": "ring", "content": "r",
                             "traceparent": traceparent(tm, pm)})
                check_message(c.read_json(), "ring", "r", offset=r["offset"] + 1)
                c.send_close(1000)
                c.read_close()
                c.expect_eof()
            srv.wait_stats(lambda s: s["connections"]["active"] == 0, what="closed")

            conn_trace = api_traces(srv, f"?trace_id={ta}")
            self.assertTrue(all(s["trace_id"] == ta for s in conn_trace), conn_trace)
            names = by_name(conn_trace)
            self.assertEqual(sorted(names), ["websocket.connection", "websocket.upgrade"])
            [up], [conn] = names["websocket.upgrade"], names["websocket.connection"]
            self.assertEqual(up["parent_span_id"], pa)
            self.assertEqual(conn["parent_span_id"], up["span_id"])
            self.assertEqual((up["kind"], conn["kind"]), ("SERVER", "SERVER"))
            self.assertTrue(up["sampled"] and conn["sampled"])
            self.assertEqual(conn["attributes"]["websocket.close.code"], 1000)
            self.assertEqual(conn["attributes"]["websocket.messages_received"], 2)
            self.assertEqual(conn["attributes"]["websocket.messages_sent"], 2)
            self.assertEqual(conn["attributes"]["network.peer.address"], "127.0.0.1")
            self.assertLessEqual(conn["start_unix_nano"], conn["end_unix_nano"])

            msg_trace = api_traces(srv, f"?trace_id={tm}")
            names = by_name(msg_trace)
            self.assertEqual(sorted(names), ["websocket.broadcast", "websocket.fanout",
                                             "websocket.message.handle"])
            [h], [b], [f] = (names["websocket.message.handle"], names["websocket.broadcast"],
                             names["websocket.fanout"])
            self.assertEqual(h["parent_span_id"], pm)
            self.assertEqual(b["parent_span_id"], h["span_id"])
            self.assertEqual(f["parent_span_id"], b["span_id"])
            self.assertEqual((h["kind"], b["kind"], f["kind"]),
                             ("CONSUMER", "PRODUCER", "CONSUMER"))
            self.assertEqual(h["attributes"]["messaging.destination.name"], "ring")
            self.assertEqual(f["attributes"]["websocket.fanout.recipients"], 1)

            # The Subscribe started a trace of its own, linked to the connection.
            everything = api_traces(srv)
            [sub] = [s for s in everything if s["name"] == "websocket.message.handle"
                     and s["attributes"].get("websocket.message.type") == "Subscribe"]
            self.assertIsNone(sub["parent_span_id"])
            self.assertEqual(sub["links"], [{"trace_id": ta, "span_id": conn["span_id"],
                                             "attributes": {}}])
            self.assertEqual(len(everything), 2 + 3 + 2)  # + Subscribe's handle and send

            # limit: the most recent first.
            two = api_traces(srv, "?limit=2")
            self.assertEqual(len(two), 2)
            ends = [s["end_unix_nano"] for s in everything]
            self.assertEqual(ends, sorted(ends, reverse=True))
            self.assertEqual([s["span_id"] for s in two], [s["span_id"] for s in everything[:2]])
            self.assertEqual(len(api_traces(srv, f"?trace_id={tm}&limit=1")), 1)

            self.assertEqual(api_traces(srv, f"?trace_id={random_ids()[0]}"), [])
            self.assertEqual(api_traces(srv, "?trace_id=not-a-trace-id"), [])

    def test_malformed_traceparent_starts_a_new_trace(self):
        """A traceparent that W3C Trace Context says to ignore (upper-case
        hex, all-zero ids, version ff) is ignored: the span starts a new
        trace; a message's own is likewise, and its handle span is then
        linked to the connection."""
        bad = ["00-" + "AB" * 16 + "-" + "cd" * 8 + "-01",
               "00-" + "0" * 32 + "-" + "cd" * 8 + "-01",
               "00-" + "ab" * 16 + "-" + "0" * 16 + "-01",
               "ff-" + "ab" * 16 + "-" + "cd" * 8 + "-01",
               "00-" + "ab" * 16 + "-" + "cd" * 8]
        with WstraceServer(threads=2) as srv:
            for tp in bad:
                with RawClient(srv.port) as c:
                    c.handshake(headers=[("traceparent", tp)])
                    c.send_json({"type": "Ping", "id": tp, "traceparent": tp})
                    self.assertEqual(c.read_json(), {"type": "Pong", "id": tp})
                    c.send_close(1000)
                    c.read_close()
            srv.wait_stats(lambda s: s["connections"]["active"] == 0, what="closed")
            spans = api_traces(srv, "?limit=1000")
        ups = [s for s in spans if s["name"] == "websocket.upgrade"]
        handles = [s for s in spans if s["name"] == "websocket.message.handle"]
        conns = {s["span_id"]: s for s in spans if s["name"] == "websocket.connection"}
        self.assertEqual((len(ups), len(handles), len(conns)), (len(bad), len(bad), len(bad)))
        for s in ups + handles:
            self.assertIsNone(s["parent_span_id"], s)
            self.assertNotIn(s["trace_id"], ("ab" * 16, "0" * 32), s)
        for h in handles:
            [link] = h["links"]
            self.assertIn(link["span_id"], conns, h)
        self.assertEqual(len({s["trace_id"] for s in ups + handles}), 2 * len(bad))

    def test_span_attributes_binary_frames_and_echo(self):
        secret = "s3cret"
        token = make_jwt({"sub": "alice"}, secret)
        with WstraceServer("--auth-secret", secret, "--max-connections", "2", "--echo",
                           threads=2) as srv:
            with RawClient(srv.port) as c:
                c.handshake(path=f"/ws?token={token}",
                            headers=[("User-Agent", "attr-test/1.0")])
                local_port = c.sock.getsockname()[1]
                c.send_frame(OP_BINARY, b"\x01\x02\x03")
                err = c.read_json()
                self.assertEqual((err["type"], err["code"]), ("Error", "unsupported_frame"), err)
                c.send_close(1000)
                c.read_close()
                c.expect_eof()
            with RawClient(srv.port) as e:
                e.handshake(path="/echo")
                e.send_text("echo me")
                self.assertEqual(e.read_frame().payload, b"echo me")
                e.send_close(1000)
                e.read_close()
            with RawClient(srv.port) as r:
                r.handshake(path="/nowhere", expect=404)
            # 503: two connections held at --max-connections 2 (once the
            # server has counted the ones above as gone: a client may see
            # its close before the server's other thread released the slot).
            srv.wait_stats(lambda s: s["connections"]["active"] == 0, what="earlier ones closed")
            with RawClient(srv.port) as h1, RawClient(srv.port) as h2:
                h1.handshake(path=f"/ws?token={token}")
                h2.handshake(path=f"/ws?token={token}")
                srv.wait_stats(lambda s: s["connections"]["active"] == 2, what="2 held")
                with RawClient(srv.port) as r:
                    r.handshake(expect=503)
                h1.send_close(1000)
                h1.read_close()
                h2.send_close(1000)
                h2.read_close()
            srv.wait_stats(lambda s: s["connections"]["active"] == 0, what="closed")
            spans = api_traces(srv, "?limit=1000")

        conns = [s for s in spans if s["name"] == "websocket.connection"]
        [conn] = [s for s in conns if s["attributes"].get("network.peer.port") == local_port]
        a = conn["attributes"]
        self.assertEqual(a["user.id"], "alice")
        self.assertGreater(a["websocket.duration_ms"], 0)
        self.assertIsInstance(a["websocket.duration_ms"], float)
        self.assertEqual(a["websocket.endpoint"], "pubsub")
        [up] = [s for s in spans if s["span_id"] == conn["parent_span_id"]]
        self.assertEqual(up["attributes"]["user_agent.original"], "attr-test/1.0")
        self.assertEqual(up["attributes"]["network.peer.port"], local_port)

        [h] = [s for s in spans if s["name"] == "websocket.message.handle"
               and s["attributes"]["websocket.connection_id"] == a["websocket.connection_id"]]
        self.assertEqual(h["attributes"]["websocket.message.type"], "binary")
        self.assertEqual(h["attributes"]["error.type"], "unsupported_frame")
        self.assertEqual(h["attributes"]["messaging.message.body.size"], 3)
        self.assertEqual(h["status"]["code"], "ERROR")
        self.assertEqual(h["links"][0]["span_id"], conn["span_id"])
        [send] = [s for s in spans if s["parent_span_id"] == h["span_id"]]
        self.assertEqual(send["name"], "websocket.message.send")
        self.assertEqual(send["attributes"]["websocket.message.type"], "Error")

        # /echo: the connection is traced, its messages are not.
        [echo] = [s for s in conns if s["attributes"]["websocket.endpoint"] == "echo"]
        echo_id = echo["attributes"]["websocket.connection_id"]
        self.assertEqual([s for s in spans if s["name"] != "websocket.connection"
                          and s["name"] != "websocket.upgrade"
                          and s["attributes"].get("websocket.connection_id") == echo_id], [])
        self.assertEqual(echo["attributes"]["websocket.messages_received"], 1)

        rejected = {s["attributes"]["http.response.status_code"]: s for s in spans
                    if s["name"] == "websocket.upgrade"
                    and s["attributes"]["http.response.status_code"] != 101}
        self.assertEqual(sorted(rejected), [404, 503])
        for status, s in rejected.items():
            self.assertEqual(s["attributes"]["error.type"], str(status))
            self.assertTrue(s["attributes"]["websocket.rejection.reason"], s)
        self.assertEqual(rejected[404]["status"]["code"], "UNSET")
        self.assertEqual(rejected[503]["status"]["code"], "ERROR")

    def check_log_line_carries_span(self, level):
        with WstraceServer("--log-level", level, "--max-backpressure", "4KiB",
                           threads=2) as srv:
            tl = slow_consumer_inside_a_span(self, srv)
            srv.wait_stats(lambda s: s["connections"]["active"] == 0, what="closed")
            line = srv.wait_log(lambda j: j.get("msg") == "slow consumer disconnected", 20)
            self.assertIsNotNone(line, srv.stderr_text()[-4000:])
            handles = {s["span_id"] for s in api_traces(srv, f"?trace_id={tl}")
                       if s["name"] == "websocket.message.handle"}
            self.assertTrue(handles)
            self.assertEqual(line.get("trace_id"), tl, line)
            self.assertIn(line.get("span_id"), handles, line)
            # Lines outside any span carry no ids; lines about one connection
            # carry that connection's span.
            conns = {s["span_id"]: s["trace_id"] for s in api_traces(srv, "?limit=1000")
                     if s["name"] == "websocket.connection"}
            for j in srv.log_lines():
                if j.get("msg") in ("wstrace listening", "telemetry configured"):
                    self.assertNotIn("trace_id", j, j)
                    self.assertNotIn("span_id", j, j)
                if j.get("msg") in ("connection open", "connection closed") and level == "debug":
                    self.assertEqual(conns.get(j.get("span_id")), j.get("trace_id"), j)

    def test_log_line_inside_a_span_carries_its_ids(self):
        self.check_log_line_carries_span("debug")

    def test_log_line_inside_an_unsampled_span_carries_its_ids(self):
        # parentbased_always_off: the connection (no traceparent) is not
        # sampled either.
        with WstraceServer("--log-level", "debug", "--max-backpressure", "4KiB",
                           threads=2, env={"OTEL_TRACES_SAMPLER": "parentbased_always_off"}) as srv:
            tl = slow_consumer_inside_a_span(self, srv, flags="00")
            srv.wait_stats(lambda s: s["connections"]["active"] == 0, what="closed")
            line = srv.wait_log(lambda j: j.get("msg") == "slow consumer disconnected", 20)
            self.assertIsNotNone(line, srv.stderr_text()[-4000:])
            # Not sampled: nothing in the ring, but the line has the ids.
            self.assertEqual(api_traces(srv, f"?trace_id={tl}"), [])
            self.assertEqual(line.get("trace_id"), tl, line)
            self.assertRegex(line.get("span_id", ""), "^[0-9a-f]{16}$", line)
            self.assertNotEqual(line.get("span_id"), "0" * 16, line)
            # The unsampled 4429 connection is exported anyway (the
            # abnormal-connection rule), with a rebuilt upgrade parent; the
            # log lines about it carry its ids.
            spans = by_name(api_traces(srv, "?limit=1000"))
            self.assertEqual(sorted(spans), ["websocket.connection", "websocket.upgrade"])
            [conn], [up] = spans["websocket.connection"], spans["websocket.upgrade"]
            self.assertFalse(conn["sampled"])
            self.assertEqual(conn["attributes"]["websocket.close.code"], 4429)
            self.assertEqual(conn["status"]["code"], "ERROR")
            self.assertEqual([e["name"] for e in conn["events"]], ["websocket.slow_consumer"])
            self.assertEqual(conn["parent_span_id"], up["span_id"])
            self.assertIs(up["attributes"]["websocket.upgrade.reconstructed"], True)
            opened = [j for j in srv.log_lines() if j.get("msg") == "connection open"]
            self.assertEqual([(j.get("trace_id"), j.get("span_id")) for j in opened],
                             [(conn["trace_id"], conn["span_id"])])

    # Issue 3 point 8 at the default level (this once worked only at debug).
    def test_log_line_inside_a_span_carries_its_ids_at_info_level(self):
        self.check_log_line_carries_span("info")


class AdminApi(unittest.TestCase):

    def test_connections_pagination_and_index_page(self):
        with WstraceServer(threads=2) as srv:
            clients = [RawClient(srv.port) for _ in range(5)]
            for c in clients:
                self.addCleanup(c.close)
                c.handshake()
            srv.wait_stats(lambda s: s["connections"]["active"] == 5, what="5 open")

            def page(query):
                status, body = srv.admin_get("/api/connections" + query)
                self.assertEqual(status, 200, body)
                return json.loads(body)

            everything = page("")
            self.assertEqual(everything["total"], 5)
            ids = [c["id"] for c in everything["connections"]]
            self.assertEqual(ids, sorted(ids))
            self.assertEqual(len(set(ids)), 5)
            seen = []
            for offset in (0, 2, 4):
                p = page(f"?limit=2&offset={offset}")
                self.assertEqual((p["total"], p["offset"], p["limit"]), (5, offset, 2))
                seen += [c["id"] for c in p["connections"]]
            self.assertEqual(seen, ids)
            self.assertEqual(page("?limit=2&offset=10")["connections"], [])
            self.assertEqual(len(page("?limit=0")["connections"]), 1)   # clamped to 1
            self.assertEqual(page("?limit=5000")["limit"], 1000)        # clamped to 1000

            status, html = srv.admin_get("/")
            self.assertEqual(status, 200)
            self.assertIn("<html", html.lower())
            # The dashboard's page: everything it loads is served from the binary.
            links = re.findall(r'(?:src|href)="(/[^"]+)"', html)
            self.assertEqual(sorted(links), sorted(["/style.css", "/chart.js", "/app.js",
                                                    "/licenses/chart.js.txt"]))
            for link in links:
                self.assertEqual(srv.admin_get(link)[0], 200, link)
            self.assertEqual(srv.admin_get("/no-such-page")[0], 404)
            for c in clients:
                c.send_close(1000)
                c.read_close()


if __name__ == "__main__":
    run_main()
