"""wss:// (--tls-cert/--tls-key) with Python's ssl and websockets, against a
test CA made at test time with the openssl command line: pub/sub over TLS
1.3 and 1.2, ALPN, session resumption, refused handshakes counted by
reason, the certificate reloaded on SIGHUP under load without dropping a
connection (and a bad new pair refused), and what an idle TLS connection
costs."""

import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import unittest

from wstrace_harness import (OP_CLOSE, OP_TEXT, AsyncTestCase, ConnectionEnded, Deadline,
                             IO_TIMEOUT, RawClient, WstraceServer, recv_json, request,
                             stalled_subscriber, wait_until, ws_connect, wstrace_bin)


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)}: {r.stderr}")


class Pki:
    """A CA and server certificates for localhost / 127.0.0.1, in a temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wstrace-tls-")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=wstrace test CA",
                cwd=self.dir)
        self.ca = os.path.join(self.dir, "ca.pem")

    def server_cert(self, name, cn="localhost"):
        """Writes name.pem (leaf + CA chain) and name.key; returns their paths."""
        with open(os.path.join(self.dir, "ext.cnf"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=self.dir)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.leaf", "-days", "2", "-extfile", "ext.cnf",
                cwd=self.dir)
        with open(os.path.join(self.dir, f"{name}.pem"), "w") as out:
            for part in (f"{name}.leaf", "ca.pem"):
                with open(os.path.join(self.dir, part)) as f:
                    out.write(f.read())
        return os.path.join(self.dir, f"{name}.pem"), os.path.join(self.dir, f"{name}.key")

    def client_context(self, **kw):
        ctx = ssl.create_default_context(cafile=self.ca)
        for k, v in kw.items():
            setattr(ctx, k, v)
        return ctx

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def peer_subject(port, ctx):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return dict(x[0] for x in s.getpeercert()["subject"])["commonName"]


@unittest.skipIf(shutil.which("openssl") is None, "the openssl command line is not installed")
class Tls(AsyncTestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.cert, cls.key = cls.pki.server_cert("server")

    @classmethod
    def tearDownClass(cls):
        cls.pki.cleanup()

    def server(self, *args, cert=None, key=None, **kw):
        return WstraceServer("--tls-cert", cert or self.cert, "--tls-key", key or self.key, *args,
                             **kw)

    def url(self, srv):
        return f"wss://localhost:{srv.port}/ws"

    async def test_pubsub_over_tls(self):
        with self.server("--max-content-size", "1MiB", "--trace-buffer", "5000") as srv:
            line = srv.expect_log(lambda j: j.get("msg") == "wstrace listening")
            self.assertTrue(line["ws"].startswith("wss://"), line)
            ctx = self.pki.client_context()
            sub = await ws_connect(self.url(srv), ssl=ctx)
            pub = await ws_connect(self.url(srv), ssl=ctx)
            s = await request(sub, {"type": "Subscribe", "channel": "secure"})
            self.assertEqual(s["type"], "Subscribed")
            big = "z" * 200_000  # many TLS records each way
            r = await request(pub, {"type": "Message", "channel": "secure", "content": big,
                                    "id": 1})
            self.assertEqual(r["type"], "Published")
            m = await recv_json(sub)
            self.assertEqual((m["content"], m["offset"]), (big, s["offset"] + 1))
            for i in range(100):
                await pub.send(json.dumps({"type": "Message", "channel": "secure",
                                           "content": str(i)}))
            for i in range(100):
                self.assertEqual((await recv_json(sub))["content"], str(i))
            await sub.close()
            await pub.close()
            m = srv.metrics()
            self.assertEqual(m.value("websocket_tls_handshakes_total", outcome="ok"), 2)
            # The upgrade spans say how.
            spans = json.loads(srv.admin_get("/api/traces?limit=1000")[1])["spans"]
            ups = [s for s in spans if s["name"] == "websocket.upgrade"]
            self.assertTrue(ups)
            self.assertEqual(ups[0]["attributes"]["tls.protocol.version"], "TLSv1.3")
            self.assertIn("tls.cipher", ups[0]["attributes"])

    async def test_tls12_alpn_and_old_versions_refused(self):
        with self.server("--max-message-size", "2MiB") as srv:
            ctx = self.pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
            ctx.set_alpn_protocols(["h2", "http/1.1"])
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    self.assertEqual(s.version(), "TLSv1.2")
                    self.assertEqual(s.selected_alpn_protocol(), "http/1.1")
                    self.assertTrue("GCM" in s.cipher()[0] or "CHACHA20" in s.cipher()[0],
                                    s.cipher())
            ws = await ws_connect(self.url(srv), ssl=ctx)
            self.assertEqual((await request(ws, {"type": "Ping"}))["type"], "Pong")
            await ws.close()
            old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            old.load_verify_locations(self.pki.ca)
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
            try:
                old.set_ciphers("DEFAULT:@SECLEVEL=0")
            except ssl.SSLError:
                pass
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
                    with old.wrap_socket(raw, server_hostname="localhost"):
                        pass
            wait_until(lambda: srv.metrics().value("websocket_tls_handshakes_total",
                                                   outcome="failed") >= 1,
                       what="the refused handshake counted")

    def test_session_resumption(self):
        with self.server() as srv:
            ctx = self.pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    session = s.session
                    self.assertFalse(s.session_reused)
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
                    self.assertTrue(s.session_reused)
            wait_until(lambda: srv.metrics().value("websocket_tls_handshakes_total",
                                                   outcome="ok", resumed="true") == 1,
                       what="one resumed handshake counted")

    def test_refused_handshakes_are_counted_by_reason(self):
        with self.server() as srv:
            # Plain HTTP to the TLS port.
            with RawClient(srv.port) as c:
                c.send_raw(c.request_bytes())
                c.expect_eof()
            # A client that does not trust the certificate (another CA).
            other = Pki()
            self.addCleanup(other.cleanup)
            with self.assertRaises(ssl.SSLCertVerificationError):
                with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
                    with other.client_context().wrap_socket(raw, server_hostname="localhost"):
                        pass
            m = wait_until(lambda: (lambda m: m if m.value(
                "websocket_tls_handshakes_total", outcome="failed", reason="alert") == 1 else None)(
                srv.metrics()), what="the untrusting client's alert counted")
            self.assertEqual(m.value("websocket_tls_handshakes_total", outcome="failed",
                                     reason="http_request"), 1)
            self.assertEqual(m.value("websocket_connections_total", outcome="rejected",
                                     reason="tls"), 2)
            spans = json.loads(srv.admin_get("/api/traces?limit=1000")[1])["spans"]
            kinds = {s["attributes"].get("error.type") for s in spans
                     if s["name"] == "websocket.upgrade"}
            self.assertTrue({"tls_http_request", "tls_alert"} <= kinds, kinds)

    def test_a_bad_pair_stops_the_start(self):
        other_cert, other_key = self.pki.server_cert("mismatch")
        for args, option in [(["--tls-cert", self.cert], "--tls-key"),
                             (["--tls-cert", "/nonexistent.pem", "--tls-key", self.key],
                              "--tls-cert"),
                             (["--tls-cert", self.cert, "--tls-key", other_key], "--tls-key")]:
            r = subprocess.run([wstrace_bin(), "--listen", "127.0.0.1:0", "--admin", "off", *args],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(option, r.stderr)

    async def test_reload_under_load_keeps_every_connection(self):
        d = tempfile.mkdtemp(prefix="wstrace-tls-live-")
        self.addCleanup(shutil.rmtree, d, True)
        live_cert, live_key = os.path.join(d, "live.pem"), os.path.join(d, "live.key")
        shutil.copy(self.cert, live_cert)
        shutil.copy(self.key, live_key)
        with self.server(cert=live_cert, key=live_key) as srv:
            ctx = self.pki.client_context()
            self.assertEqual(peer_subject(srv.port, ctx), "localhost")
            subs = [await ws_connect(self.url(srv), ssl=ctx) for _ in range(20)]
            starts = [await request(ws, {"type": "Subscribe", "channel": "live"}) for ws in subs]
            pub = await ws_connect(self.url(srv), ssl=ctx)
            sent = 0

            async def publish(n):
                nonlocal sent
                for _ in range(n):
                    await pub.send(json.dumps({"type": "Message", "channel": "live",
                                               "content": str(sent)}))
                    sent += 1

            await publish(200)
            # A renewed certificate under the same file names, then SIGHUP.
            new_cert, new_key = self.pki.server_cert("renewed", cn="renewed.localhost")
            shutil.copy(new_cert, live_cert)
            shutil.copy(new_key, live_key)
            srv.signal(signal.SIGHUP)
            srv.expect_log(lambda j: j.get("msg") == "TLS certificate reloaded (SIGHUP)",
                           what="the certificate reload")
            await publish(200)
            self.assertEqual(peer_subject(srv.port, ctx), "renewed.localhost")
            # A broken pair is refused: the renewed one stays.
            with open(live_key, "w") as f:
                f.write("not a key\n")
            srv.signal(signal.SIGHUP)
            srv.expect_log(lambda j: "refused" in j.get("msg", "") and j.get("level") == "error",
                           what="the bad pair refused")
            self.assertEqual(peer_subject(srv.port, ctx), "renewed.localhost")
            await publish(200)
            # Nobody was dropped, and everyone got everything in order.
            for ws, s in zip(subs, starts):
                for i in range(sent):
                    m = await recv_json(ws, what=f"message {i} after the reloads")
                    self.assertEqual((m["content"], m["offset"]), (str(i), s["offset"] + 1 + i))
            self.assertEqual(srv.stats()["connections"]["active"], 21)
            for ws in subs + [pub]:
                await ws.close()

    async def test_a_slow_tls_reader_gets_a_clean_stream_then_4429(self):
        # A reader that stops: its socket fills while OpenSSL holds a record
        # it has already encrypted (a write that would block). When the
        # server then drops what the reader has not started to receive, that
        # record's frames must stay (they are on their way): dropping them
        # would make the retried write carry other bytes than the record, a
        # corrupt stream or a TLS error instead of the Close 4429.
        with self.server("--max-backpressure", "64KiB", "--close-timeout", "60s",
                         "--send-buffer", "16KiB", threads=2) as srv:
            ctx = self.pki.client_context()
            slow = stalled_subscriber(self, srv.port, "feed", ssl_context=ctx)
            pub = await ws_connect(self.url(srv), ssl=ctx)
            sent = 0
            flood = Deadline(60.0, "no slow consumer disconnect")
            while sent < 20000 and not flood.expired():
                for _ in range(20):
                    await pub.send(json.dumps({"type": "Message", "channel": "feed",
                                               "content": f"{sent}:{'t' * 1000}"}))
                    sent += 1
                await request(pub, {"type": "Ping"})  # the server has read them all
                if srv.stats()["slow_consumer_disconnects_total"] >= 1:
                    break
            self.assertEqual(srv.stats()["slow_consumer_disconnects_total"], 1,
                             f"not dropped after {sent} messages of 1 KB")
            seq, code = [], None
            d = Deadline(IO_TIMEOUT, "the slow TLS reader read no Close frame")
            try:
                while True:
                    f = slow.read_frame(deadline=d)
                    if f.opcode == OP_CLOSE:
                        code = f.close_code()
                        break
                    self.assertEqual(f.opcode, OP_TEXT)
                    m = json.loads(f.payload)
                    self.assertEqual(m["type"], "Message", m)
                    seq.append(int(m["content"].split(":")[0]))
            except (ConnectionEnded, ssl.SSLError) as e:
                self.fail(f"after {len(seq)} messages the stream ended without a Close: {e!r}")
            self.assertEqual(code, 4429)
            self.assertEqual(seq, list(range(len(seq))), "not a gapless prefix")
            self.assertLess(len(seq), sent)
            await pub.close()

    async def test_idle_tls_connections_are_small(self):
        with self.server("--heartbeat-interval", "0", "--client-timeout", "0") as srv:
            if srv.sanitized():
                self.skipTest("RSS per connection needs the plain build (ASan's redzones and "
                              "quarantine)")
            ctx = self.pki.client_context()

            def rss():
                with open(f"/proc/{srv.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            return int(line.split()[1]) * 1024
                return 0

            warm = [await ws_connect(self.url(srv), ssl=ctx) for _ in range(20)]
            before = rss()
            n = 300
            clients = [await ws_connect(self.url(srv), ssl=ctx) for _ in range(n)]
            for ws in clients[:50]:
                await request(ws, {"type": "Ping"})
            srv.wait_stats(lambda s: s["connections"]["active"] == n + 20, what="all connected")
            per = (rss() - before) / n
            print(f"\n  {per:.0f} bytes of server RSS per idle TLS connection", end=" ")
            # OpenSSL's session state (about 14-16 KiB with OpenSSL 3.0: the
            # SSL object, its cipher contexts) without its record buffers,
            # which are released once nothing is buffered (a connection that
            # kept them would cost 34 KiB or more).
            self.assertLess(per, 24 * 1024)
            for ws in warm + clients:
                await ws.close()


if __name__ == "__main__":
    unittest.main()
