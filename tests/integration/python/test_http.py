"""Upgrade rejections (PRODUCT.md §3, issue 2 point 3) over a raw socket:
400, 426 (+Sec-WebSocket-Version: 13), 404, 403, 431, 503, 408; each is
answered, the socket is then closed, and each is counted by reason."""

import socket
import struct
import unittest

from wstrace_harness import (OP_TEXT, ConnectionEnded, RawClient, WstraceServer, encode_frame,
                             upgrade_request)


class Rejections(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = WstraceServer("--allowed-origins", "https://ok.example.com",
                                "--handshake-timeout", "300ms", threads=2).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        assert rc == 0, f"wstrace exited with {rc}:\n{cls.srv.stderr_text()[-4000:]}"

    def raw(self):
        c = RawClient(self.srv.port)
        self.addCleanup(c.close)
        return c

    def reject(self, data, status):
        c = self.raw()
        c.send_raw(data)
        resp = c.read_http_response()
        self.assertEqual(resp.status, status, resp.raw)
        self.assertNotIn("upgrade", resp.headers.get("connection", "").lower())
        c.expect_eof()
        return resp

    def request(self, **kw):
        return upgrade_request(self.srv.port, **kw)

    def rejected(self, reason):
        return self.srv.metrics().value("websocket_connections_total", outcome="rejected",
                                        reason=reason)

    def test_400_bad_requests(self):
        cases = [
            self.request(omit=("Sec-WebSocket-Key",)),
            self.request(key="c2hvcnQ="),  # decodes to 5 bytes, not 16
            self.request(key="not base64 at all!!!!!!!"),
            self.request(omit=("Upgrade",)),
            self.request(omit=("Connection",)),
            self.request(omit=("Host",)),
            self.request(headers=[("Upgrade", "h2c")], omit=("Upgrade",)),
            self.request().replace(b"GET ", b"POST ", 1),
            self.request().replace(b"HTTP/1.1", b"HTTP/1.0", 1),
            b"NONSENSE\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
        ]
        before = self.rejected("bad_request")
        for data in cases:
            with self.subTest(data=data[:60]):
                self.reject(data, 400)
        self.assertEqual(self.rejected("bad_request") - before, len(cases))

    def test_426_other_version_names_13(self):
        before = self.rejected("version")
        for v in ("8", "12", "14"):
            resp = self.reject(self.request(version=v), 426)
            self.assertEqual(resp.header("sec-websocket-version"), "13")
        self.assertEqual(self.rejected("version") - before, 3)

    def test_404_other_path(self):
        before = self.rejected("not_found")
        for path in ("/", "/other", "/ws/x", "/echo"):  # --echo is off here
            self.reject(self.request(path=path), 404)
        self.assertEqual(self.rejected("not_found") - before, 4)

    def test_403_origin_not_allowed(self):
        before = self.rejected("origin")
        self.reject(self.request(headers=[("Origin", "https://evil.example.com")]), 403)
        self.assertEqual(self.rejected("origin") - before, 1)
        c = self.raw()
        c.handshake(headers=[("Origin", "https://ok.example.com")])

    def test_431_headers_too_large(self):
        before = self.rejected("headers_too_large")
        big = [("X-Filler", "a" * 17000)]
        self.reject(self.request(headers=big), 431)
        many = [(f"X-H{i}", "b" * 100) for i in range(200)]  # 20 KB in small headers
        self.reject(self.request(headers=many), 431)
        self.assertEqual(self.rejected("headers_too_large") - before, 2)

    def test_big_but_allowed_headers_are_fine(self):
        c = self.raw()
        c.handshake(headers=[("X-Filler", "a" * 8000)])

    def test_browser_style_headers_are_accepted(self):
        # Firefox sends "Connection: keep-alive, Upgrade"; header names and
        # the Upgrade token are case-insensitive.
        c = self.raw()
        c.send_raw(upgrade_request(self.srv.port, omit=("Connection", "Upgrade"),
                                   headers=[("connection", "keep-alive, Upgrade"),
                                            ("UPGRADE", "WebSocket")]))
        self.assertEqual(c.read_http_response().status, 101)

    def test_first_frame_in_the_same_packet_as_the_request(self):
        c = self.raw()
        c.send_raw(c.request_bytes()
                   + encode_frame(OP_TEXT, b'{"type":"Ping","id":"pipelined"}'))
        self.assertEqual(c.read_http_response().status, 101)
        self.assertEqual(c.read_json(), {"type": "Pong", "id": "pipelined"})

    def test_unknown_subprotocol_is_not_selected(self):
        c = self.raw()
        resp = c.handshake(headers=[("Sec-WebSocket-Protocol", "chat, superchat")])
        self.assertIsNone(resp.header("sec-websocket-protocol"))

    def test_408_handshake_timeout(self):
        before = self.rejected("handshake_timeout")
        c = self.raw()
        c.send_raw(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        resp = c.read_http_response()
        self.assertEqual(resp.status, 408)
        c.expect_eof()
        # One that sends nothing at all is also dropped.
        quiet = self.raw()
        try:
            resp = quiet.read_http_response()
            self.assertEqual(resp.status, 408)
        except ConnectionEnded:
            pass
        quiet.expect_eof()
        self.assertEqual(self.rejected("handshake_timeout") - before, 2)

    def test_websocket_after_handshake_is_not_timed_out(self):
        c = self.raw()
        c.handshake()
        # Past the 300 ms handshake timeout (measured by a second client
        # being timed out), the upgraded connection is still fine.
        late = self.raw()
        late.send_raw(b"GET /ws HTTP/1.1\r\n")
        self.assertEqual(late.read_http_response().status, 408)
        c.send_json({"type": "Ping", "id": 1})
        self.assertEqual(c.read_json(), {"type": "Pong", "id": 1})


class Capacity503(unittest.TestCase):

    def test_503_at_max_connections(self):
        with WstraceServer("--max-connections", "3", threads=2) as srv:
            held = []
            for _ in range(3):
                c = RawClient(srv.port)
                self.addCleanup(c.close)
                c.handshake()
                held.append(c)
            srv.wait_stats(lambda s: s["connections"]["active"] == 3)
            for _ in range(2):
                c = RawClient(srv.port)
                self.addCleanup(c.close)
                resp = c.handshake(expect=503)
                self.assertEqual(resp.status, 503)
                c.expect_eof()
            self.assertEqual(srv.metrics().value("websocket_connections_total",
                                                 outcome="rejected", reason="capacity"), 2)
            # The held ones still work; when one leaves, a new one gets in.
            for c in held:
                c.send_json({"type": "Ping"})
                self.assertEqual(c.read_json(), {"type": "Pong"})
            held[0].send_close(1000)
            held[0].read_close()
            held[0].expect_eof()
            srv.wait_stats(lambda s: s["connections"]["active"] == 2)
            c = RawClient(srv.port)
            self.addCleanup(c.close)
            c.handshake()
            # Clients that vanish with a TCP reset free their places too.
            for c in held[1:] + [c]:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
            srv.wait_stats(lambda s: s["connections"]["active"] == 0)
            for _ in range(3):
                c = RawClient(srv.port)
                self.addCleanup(c.close)
                c.handshake()
                c.send_close(1000)
                c.read_close()


if __name__ == "__main__":
    unittest.main()
