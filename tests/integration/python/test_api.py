"""The server API (--api) with Python's http.client and curl: a backend
publishes (the answer's offset is the one subscribers get), broadcasts,
reads history, lists channels, disconnects and (un)subscribes users; keep-
alive with pipelining answers in order; wrong or missing keys, malformed
JSON and oversized bodies get clear 4xx answers; every request is counted
and continues the caller's traceparent."""

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import jwt

from wstrace_harness import (AsyncTestCase, WstraceServer, api_call, recv_json, request,
                             subscribe, wait_until, ws_connect)

KEY = "test-api-key-0123456789"


def make_token(secret, sub):
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 600}, secret, algorithm="HS256")


def api(srv, method, body=None, key=KEY, **kw):
    return api_call(srv, method, body, key=key, **kw)


class Api(AsyncTestCase):

    def server(self, *args, **kw):
        return WstraceServer("--api", "127.0.0.1:0", "--api-key", KEY, *args, **kw)

    async def test_publish_reaches_subscribers_with_the_offset_it_answers(self):
        with self.server("--trace-buffer", "2000") as srv:
            self.assertGreater(srv.api_port, 0)
            subs = [await ws_connect(srv.url()) for _ in range(4)]
            pos = [await subscribe(ws, "news") for ws in subs]
            for i in range(20):
                status, r = await asyncio.to_thread(api, srv, "publish",
                                                    {"channel": "news", "content": f"n{i}"})
                self.assertEqual(status, 200, r)
                self.assertEqual((r["channel"], r["epoch"]), ("news", pos[0]["epoch"]))
                self.assertEqual(r["offset"], pos[0]["offset"] + 1 + i)
                for ws in subs:
                    m = await recv_json(ws)
                    self.assertEqual((m["content"], m["offset"]), (f"n{i}", r["offset"]))
            # Broadcast: one result per channel, each with its own offset.
            s2 = await ws_connect(srv.url())
            await subscribe(s2, "alerts")
            status, r = await asyncio.to_thread(
                api, srv, "broadcast", {"channels": ["news", "alerts"], "content": "both"})
            self.assertEqual(status, 200, r)
            self.assertEqual([x["channel"] for x in r["results"]], ["news", "alerts"])
            self.assertEqual(r["results"][0]["offset"], pos[0]["offset"] + 21)
            self.assertEqual(r["results"][1]["offset"], 1)
            self.assertEqual((await recv_json(s2))["content"], "both")
            for ws in subs:
                self.assertEqual((await recv_json(ws))["content"], "both")
            m = srv.metrics()
            self.assertEqual(m.value("websocket_api_requests_total", method="publish",
                                     outcome="ok"), 20)
            self.assertEqual(m.value("websocket_api_requests_total", method="broadcast",
                                     outcome="ok"), 1)
            for ws in subs + [s2]:
                await ws.close()

    async def test_traceparent_goes_on_through_the_broadcast_and_the_fanout(self):
        with self.server("--trace-buffer", "2000") as srv:
            ws = await ws_connect(srv.url())
            await subscribe(ws, "traced")
            trace = "4bf92f3577b34da6a3ce929d0e0e4736"
            tp = f"00-{trace}-00f067aa0ba902b7-01"
            status, r = await asyncio.to_thread(api, srv, "publish",
                                                {"channel": "traced", "content": "x"},
                                                headers={"traceparent": tp})
            self.assertEqual(status, 200, r)
            await recv_json(ws)

            def spans():
                return [s for s in json.loads(srv.admin_get("/api/traces?limit=1000")[1])["spans"]
                        if s["trace_id"] == trace]

            wait_until(lambda: {"websocket.fanout", "websocket.broadcast"} <=
                       {s["name"] for s in spans()}, what="broadcast and fanout spans")
            by_name = {s["name"]: s for s in spans()}
            server_span = by_name["POST /api/v1/publish"]
            self.assertEqual(server_span["parent_span_id"], "00f067aa0ba902b7")
            self.assertEqual(server_span["attributes"]["http.response.status_code"], 200)
            self.assertEqual(by_name["websocket.broadcast"]["parent_span_id"],
                             server_span["span_id"])
            await ws.close()

    async def test_history_and_channels(self):
        rules = ('[[channel]]\nmatch = "kept:*"\nhistory_size = 10\n')
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write(rules)
        self.addCleanup(os.unlink, f.name)
        with self.server("--config", f.name) as srv:
            offsets = []
            for i in range(15):
                status, r = await asyncio.to_thread(api, srv, "publish",
                                                    {"channel": "kept:a", "content": str(i)})
                offsets.append(r["offset"])
            status, h = await asyncio.to_thread(api, srv, "history", {"channel": "kept:a"})
            self.assertEqual(status, 200, h)
            self.assertEqual([m["content"] for m in h["messages"]], [str(i) for i in range(5, 15)])
            self.assertEqual(h["offset"], offsets[-1])
            status, h = await asyncio.to_thread(
                api, srv, "history",
                {"channel": "kept:a", "since": {"epoch": h["epoch"], "offset": offsets[11]},
                 "limit": 2})
            self.assertEqual((h["recovered"], [m["offset"] for m in h["messages"]]),
                             (True, offsets[12:14]))
            status, h = await asyncio.to_thread(
                api, srv, "history",
                {"channel": "kept:a", "since": {"epoch": h["epoch"], "offset": 1}})
            self.assertFalse(h["recovered"])
            ws = await ws_connect(srv.url())
            await subscribe(ws, "room:1")
            for get in (True, False):
                status, c = await asyncio.to_thread(api, srv, "channels", None if get else {},
                                                    http_method="GET" if get else "POST")
                self.assertEqual(status, 200, c)
                self.assertIn({"channel": "room:1", "subscribers": 1}, c["channels"])
            status, info = await asyncio.to_thread(api, srv, "info", http_method="GET")
            self.assertEqual((status, info["connections"], info["threads"]), (200, 1, 2))
            await ws.close()

    async def test_disconnect_subscribe_and_unsubscribe_a_user(self):
        secret = "api-test-secret"
        with self.server("--auth-secret", secret) as srv:
            alice = [await ws_connect(srv.url(f"/ws?token={make_token(secret, sub='alice')}"))
                     for _ in range(3)]
            bob = await ws_connect(srv.url(f"/ws?token={make_token(secret, sub='bob')}"))
            status, r = await asyncio.to_thread(api, srv, "subscribe",
                                                {"user": "alice", "channel": "inbox:alice"})
            self.assertEqual((status, r), (200, {"subscribed": 3, "nodes": 1}))
            for ws in alice:
                s = await recv_json(ws)
                self.assertEqual((s["type"], s["channel"]), ("Subscribed", "inbox:alice"))
            await asyncio.to_thread(api, srv, "publish",
                                    {"channel": "inbox:alice", "content": "hi"})
            for ws in alice:
                self.assertEqual((await recv_json(ws))["content"], "hi")
            status, r = await asyncio.to_thread(api, srv, "unsubscribe",
                                                {"user": "alice", "channel": "inbox:alice"})
            self.assertEqual((status, r), (200, {"unsubscribed": 3, "nodes": 1}))
            for ws in alice:
                self.assertEqual((await recv_json(ws))["type"], "Unsubscribed")
            status, r = await asyncio.to_thread(api, srv, "disconnect",
                                                {"user": "alice", "code": 4000,
                                                 "reason": "bye"})
            self.assertEqual((status, r), (200, {"disconnected": 3, "nodes": 1}))
            for ws in alice:
                await ws.wait_closed()
                self.assertEqual((ws.close_code, ws.close_reason), (4000, "bye"))
            # The admin API finds a user's connections, and a channel's.
            rows = json.loads(srv.admin_get("/api/connections?user=bob")[1])
            self.assertEqual(rows["total"], 1)
            self.assertEqual(rows["connections"][0]["user_id"], "bob")
            await asyncio.to_thread(api, srv, "subscribe", {"user": "bob", "channel": "b.only"})
            await recv_json(bob)  # Subscribed
            rows = json.loads(srv.admin_get("/api/connections?channel=b.only")[1])
            self.assertEqual([r["user_id"] for r in rows["connections"]], ["bob"])
            t = rows["connections"][0]["thread"]
            self.assertEqual(json.loads(srv.admin_get(f"/api/connections?thread={t}")[1])["total"],
                             sum(1 for c in json.loads(srv.admin_get("/api/connections")[1])
                                 ["connections"] if c["thread"] == t))
            # Bob is untouched.
            self.assertEqual((await request(bob, {"type": "Ping"}))["type"], "Pong")
            status, r = await asyncio.to_thread(api, srv, "disconnect", {"user": "nobody"})
            self.assertEqual((status, r), (200, {"disconnected": 0, "nodes": 1}))
            await bob.close()

    def test_refusals_are_clear(self):
        with self.server("--api-max-body", "1KiB", "--max-content-size", "100") as srv:
            cases = [
                (("publish", {"channel": "a", "content": "x"}), {"key": None}, 401,
                 "unauthorized"),
                (("publish", {"channel": "a", "content": "x"}), {"key": "wrong"}, 401,
                 "unauthorized"),
                (("publish", "{not json"), {}, 400, "invalid_json"),
                (("publish", "[1,2]"), {}, 400, "invalid_json"),
                (("publish", {"content": "x"}), {}, 400, "missing_field"),
                (("publish", {"channel": "bad channel", "content": "x"}), {}, 400,
                 "invalid_channel"),
                (("publish", {"channel": "a", "content": 5}), {}, 400, "invalid_json"),
                (("publish", {"channel": "a", "content": "y" * 200}), {}, 413,
                 "message_too_large"),
                (("disconnect", {"code": 1001, "user": "u"}), {}, 400, "invalid_json"),
                (("disconnect", {}), {}, 400, "missing_field"),
                (("nosuch", {}), {}, 404, "not_found"),
                (("publish", None), {"http_method": "GET"}, 405, "method_not_allowed"),
            ]
            for (method, body), kw, status, code in cases:
                got, r = api(srv, method, body, **kw)
                self.assertEqual((got, r["error"]["code"]), (status, code), (method, body, r))
                self.assertTrue(r["error"]["message"])
            # A body over --api-max-body: 413 and the connection is closed.
            got, r = api(srv, "publish", "x" * 2000)
            self.assertEqual((got, r["error"]["code"]), (413, "body_too_large"))
            m = srv.metrics()
            self.assertEqual(m.value("websocket_api_requests_total", method="publish",
                                     outcome="unauthorized"), 2)
            self.assertGreaterEqual(m.value("websocket_api_requests_total", method="publish",
                                            outcome="client_error"), 6)

    def test_pipelined_requests_are_answered_in_order(self):
        with self.server() as srv:
            n = 500
            req = b""
            for i in range(n):
                body = json.dumps({"channel": f"p{i % 7}", "content": str(i)}).encode()
                req += (b"POST /api/v1/publish HTTP/1.1\r\nHost: x\r\n"
                        b"Authorization: Bearer " + KEY.encode() + b"\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            with socket.create_connection(("127.0.0.1", srv.api_port), timeout=20) as s:
                s.sendall(req)
                s.shutdown(socket.SHUT_WR)
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            bodies = []
            while data:
                head, rest = data.split(b"\r\n\r\n", 1)
                self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
                length = int([line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")][0])
                bodies.append(json.loads(rest[:length]))
                data = rest[length:]
            self.assertEqual(len(bodies), n)
            # In request order: channel p(i%7)'s offsets count up by one per round.
            for i, b in enumerate(bodies):
                self.assertEqual((b["channel"], b["offset"]), (f"p{i % 7}", i // 7 + 1))

    @unittest.skipIf(shutil.which("curl") is None, "curl is not installed")
    def test_curl_publishes(self):
        with self.server() as srv:
            r = subprocess.run(
                ["curl", "-sS", "-X", "POST", f"http://127.0.0.1:{srv.api_port}/api/v1/publish",
                 "-H", f"Authorization: Bearer {KEY}", "-H", "Content-Type: application/json",
                 "-d", '{"channel":"news","content":"from curl"}'],
                capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout)["offset"], 1)

    def test_a_key_is_required_off_loopback(self):
        srv = WstraceServer("--api", "0.0.0.0:0")
        with self.assertRaises(Exception):
            srv.start()
        self.assertIn("--api-key", srv.stderr_text())


if __name__ == "__main__":
    unittest.main()
