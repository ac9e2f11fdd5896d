"""Abuse limits: connections and handshakes per client address (IPv6 per
/64), refused with HTTP 429 before any other work, counted by reason and
traced; and the per-connection error budget closing with 1008."""

import json
import socket
import unittest

from wstrace_harness import RawClient, WstraceServer, wait_until


def raw_client(test, port, host="127.0.0.1", source=None, family=socket.AF_INET):
    """A RawClient whose socket is bound to `source` (another loopback
    address) or speaks IPv6."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    if source:
        sock.bind((source, 0))
    sock.settimeout(20)
    sock.connect((host, port))
    c = RawClient.__new__(RawClient)
    c.sock, c.port, c.timeout, c.buf, c.deflate, c.extensions = sock, port, 20, b"", False, None
    test.addCleanup(c.close)
    return c


def refused(srv, reason):
    return srv.metrics().value("websocket_connections_total", outcome="rejected", reason=reason) or 0


class PerAddress(unittest.TestCase):

    def test_connections_per_address(self):
        with WstraceServer("--max-connections-per-ip", "3") as srv:
            held = []
            for _ in range(3):
                c = RawClient(srv.port)
                self.addCleanup(c.close)
                c.handshake()
                held.append(c)
            extra = RawClient(srv.port)
            self.addCleanup(extra.close)
            r = extra.handshake(expect=429)
            self.assertEqual(r.header("retry-after"), "1")
            self.assertEqual(refused(srv, "per_ip_connections"), 1)
            # Another address (127.0.0.2 is loopback too) is not affected.
            raw_client(self, srv.port, source="127.0.0.2").handshake()
            # A connection that ends frees its place.
            held[0].send_close()
            held[0].read_close()
            held[0].expect_eof()
            wait_until(lambda: srv.stats()["connections"]["active"] == 3, what="one closed")
            again = RawClient(srv.port)
            self.addCleanup(again.close)
            again.handshake()
            spans = json.loads(srv.admin_get("/api/traces?limit=1000")[1])["spans"]
            rejected = [s for s in spans if s["name"] == "websocket.upgrade"
                        and s["attributes"].get("http.response.status_code") == 429]
            self.assertEqual(len(rejected), 1)
            self.assertIn("too many connections", rejected[0]["attributes"]["websocket.rejection.reason"])

    def test_handshake_rate_per_address(self):
        with WstraceServer("--handshake-rate-per-ip", "5") as srv:
            statuses = []
            for _ in range(12):  # far faster than 5 per second
                c = RawClient(srv.port)
                r = c.handshake(expect=None)
                statuses.append(r.status)
                c.close()
            self.assertGreaterEqual(statuses.count(101), 5)
            self.assertGreater(statuses.count(429), 0, statuses)
            self.assertEqual(statuses[:5], [101] * 5, "the burst is allowed")
            self.assertEqual(refused(srv, "per_ip_rate"), statuses.count(429))

    def test_ipv6_counts_per_prefix(self):
        try:
            probe = socket.socket(socket.AF_INET6)
            probe.bind(("::1", 0))
            probe.close()
        except OSError:
            self.skipTest("no IPv6 loopback here")
        with WstraceServer("--max-connections-per-ip", "1", listen="[::1]:0") as srv:
            raw_client(self, srv.port, "::1", family=socket.AF_INET6).handshake()
            raw_client(self, srv.port, "::1", family=socket.AF_INET6).handshake(expect=429)
            self.assertEqual(refused(srv, "per_ip_connections"), 1)


class ErrorBudget(unittest.TestCase):

    def test_too_many_errors_close_with_1008(self):
        with WstraceServer("--error-budget", "10") as srv:
            c = RawClient(srv.port)
            self.addCleanup(c.close)
            c.handshake()
            for _ in range(10):
                c.send_text("{not json")
                self.assertEqual(c.read_json()["code"], "invalid_json")
            c.send_text("{not json")
            code, reason = c.read_close()
            self.assertEqual((code, reason), (1008, "too many errors"))
            c.expect_eof()
            # A client that errs within the budget stays.
            ok = RawClient(srv.port)
            self.addCleanup(ok.close)
            ok.handshake()
            for _ in range(9):
                ok.send_text("[]")
                ok.read_json()
            ok.send_json({"type": "Ping", "id": 1})
            self.assertEqual(ok.read_json(), {"type": "Pong", "id": 1})


if __name__ == "__main__":
    unittest.main()
