"""The client_max_window_bits a client negotiates is the window of the
server's inflater, not only a parameter in the reply header.

A back-reference inside one message proves nothing: zlib lets one inflate
call refer to output produced earlier in the same call, whatever its window.
So these tests keep the client's compression context between messages and
make message 2 refer back into message 1, at a chosen distance D. The client
compresses with a real 15-bit window (Python zlib, wbits=-15), so it can
produce distances its negotiated window forbids. Message 1 is 4096 bytes of
a de Bruijn sequence over hex digits: every 3-byte substring occurs once, so
it has no back-reference of its own (zlib's shortest match is 3 bytes) and
message 2, a piece of it, can only be encoded by references to message 1 at
exactly distance D. The test checks in Python that the bytes really do that:
message 2 inflates after message 1 with a window of 2^bits >= D, fails with a
window < D, and fails on its own.

The server must echo message 2 when D fits the negotiated window, and
otherwise refuse it: no echo, Close 1002 (docs/PROTOCOL.md: bad compressed
data is an RFC 6455 violation; a compression error maps to 1002 in
src/ws/close_code.h), the TCP connection closed, and one more
websocket.errors{error.type="compression"}. Both sides of each window size
are tried: 9 bits (512 bytes), 10 (what the server picks when the client
lets it choose), 15 (no client_max_window_bits offered), and
client_no_context_takeover (no window kept between messages at all).

The memory angle: 300 connections that each sent one compressed message of
more than 32 KiB (so the whole window is written, and resident) cost about
32 KiB more each with a 15-bit window than with a 9-bit one; the server's
VmRSS growth over those messages is compared with a wide margin."""

import socket
import time
import unittest
import zlib

from wstrace_harness import (IO_TIMEOUT, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, ConnectionEnded,
                             RawClient, WstraceServer, inflate_message, wait_until)

TAIL = b"\x00\x00\xff\xff"


def de_bruijn_hex(n=3):
    """The de Bruijn sequence B(16, n) in hex digits: 16**n characters in
    which every n-character substring occurs at most once."""
    k = 16
    a = [0] * k * n
    seq = []

    def db(t, p):
        if t > n:
            if n % p == 0:
                seq.extend(a[1:p + 1])
        else:
            a[t] = a[t - p]
            db(t + 1, p)
            for j in range(a[t - p] + 1, k):
                a[t] = j
                db(t + 1, t)

    db(1, 1)
    return "".join("0123456789abcdef"[i] for i in seq).encode()


HEX = de_bruijn_hex()
assert len(HEX) == 4096 and len({HEX[i:i + 3] for i in range(len(HEX) - 2)}) == 4094


class ContextClient:
    """The client's compressor: a real 15-bit window, kept between messages
    (context takeover), whatever window was negotiated."""

    def __init__(self):
        self.comp = zlib.compressobj(9, zlib.DEFLATED, -15, 9)

    def message(self, data):
        out = self.comp.compress(data) + self.comp.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(TAIL)
        return out[:-4]


def strict_inflate(d, payload):
    """Inflates one message with decompressor `d`, one output byte per
    inflate call: then no reference can reach into output of the same call,
    and every distance is checked against the window alone. Raises
    zlib.error when the data needs a larger window than d has."""
    out, buf = [], payload + TAIL
    while True:
        piece = d.decompress(buf, 1)
        buf = d.unconsumed_tail
        if not piece and not buf:
            return b"".join(out)
        out.append(piece)


def needs_window(m1, m2, plain2):
    """The smallest window bits (9..15) with which m2 inflates after m1,
    checked strictly; also that m2 needs m1 at all (fails on its own).
    Returns (bits or None, whether m2 fails without m1)."""
    try:
        zlib.decompressobj(-15).decompress(m2 + TAIL)
        alone_fails = False
    except zlib.error:
        alone_fails = True
    for bits in range(9, 16):
        d = zlib.decompressobj(-bits)
        try:
            strict_inflate(d, m1)
            if strict_inflate(d, m2) == plain2:
                return bits, alone_fails
        except zlib.error:
            continue
    return None, alone_fails


def negotiate(test, c, path, offer, want_bits):
    """Handshake offering `offer`; the reply must carry
    client_max_window_bits=want_bits (None: no such parameter, so the client
    window is 15 bits) and, when offered, client_no_context_takeover."""
    c.handshake(path, [("Sec-WebSocket-Extensions", offer)])
    test.assertTrue(c.deflate, f"{offer!r}: permessage-deflate not negotiated")
    params = [p.strip() for p in c.extensions.split(";")]
    got = [p for p in params if p.startswith("client_max_window_bits")]
    want = [] if want_bits is None else [f"client_max_window_bits={want_bits}"]
    test.assertEqual(got, want, f"reply {c.extensions!r} to {offer!r}")
    if "client_no_context_takeover" in offer:
        test.assertIn("client_no_context_takeover", params)


class WindowCase(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = WstraceServer("--echo", "--compression", "on", threads=2).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        assert rc == 0, f"wstrace exited with {rc}:\n{cls.srv.stderr_text()[-4000:]}"

    def compression_errors(self):
        v = self.srv.metrics().value("websocket_errors_total", error_type="compression")
        self.assertIsNotNone(v, "no websocket_errors_total series in /metrics")
        return int(v)

    def connect(self, path, offer, want_bits):
        """Negotiates `offer`; checks the reply's client_max_window_bits
        (None: the reply must not have one, the window is 15 bits)."""
        c = RawClient(self.srv.port)
        self.addCleanup(c.close)
        negotiate(self, c, path, offer, want_bits)
        return c

    def two_messages(self, msg1, msg2, distance):
        """Compresses msg1 then msg2 with one context; checks in Python that
        msg2 reaches back exactly `distance` bytes into msg1: it needs a
        window of at least `distance`, and msg1 alone needs none beyond
        512 bytes."""
        z = ContextClient()
        m1, m2 = z.message(msg1), z.message(msg2)
        self.assertEqual(strict_inflate(zlib.decompressobj(-9), m1), msg1,
                         "message 1 must be valid with the smallest window")
        bits, alone_fails = needs_window(m1, m2, msg2)
        self.assertTrue(alone_fails, "message 2 must not inflate without message 1")
        want = max(9, (distance - 1).bit_length())
        self.assertEqual(bits, want, f"message 2 should need a {want}-bit window "
                                     f"(reference {distance} bytes back)")
        return m1, m2

    def expect_refused(self, c, what):
        """Reads up to the server's Close within one deadline (Pings and
        Pongs skipped; a data frame means message 2 was accepted), checks
        1002, then waits for the server to close the TCP connection."""
        end = time.monotonic() + IO_TIMEOUT
        while True:
            left = end - time.monotonic()
            if left <= 0:
                self.fail(f"{what}: neither an echo nor a Close within {IO_TIMEOUT:g} s")
            try:
                f = c.read_frame(timeout=left)
            except socket.timeout:  # also the harness's WaitTimeout (a TimeoutError)
                self.fail(f"{what}: neither an echo nor a Close within {IO_TIMEOUT:g} s")
            except ConnectionEnded:
                self.fail(f"{what}: TCP connection closed without a Close frame")
            if f.opcode in (OP_PING, OP_PONG):
                continue
            if f.opcode != OP_CLOSE:
                data = inflate_message(f.payload) if f.rsv1 else f.payload
                self.fail(f"{what}: the server accepted message 2 and answered "
                          f"{len(data)} bytes {data[:40]!r}...")
            break
        self.assertEqual(f.close_code(), 1002, f"{what}: close reason {f.close_reason()!r}")
        try:
            c.expect_eof()
        except socket.timeout:
            self.fail(f"{what}: Close sent but the TCP connection stayed open "
                      f"for {IO_TIMEOUT:g} s")


class EchoWindow(WindowCase):
    """/echo: message 1 is HEX; message 2 is the 300 bytes of HEX that start
    `distance` bytes before its end."""

    def run_case(self, offer, reply_bits, distance, accepted):
        what = f"{offer!r}, reference {distance} bytes back"
        msg1, msg2 = HEX, HEX[-distance:][:300]
        m1, m2 = self.two_messages(msg1, msg2, distance)
        c = self.connect("/echo", offer, reply_bits)
        before = self.compression_errors()
        c.send_frame(OP_TEXT, m1, rsv1=True)
        self.assertEqual(c.read_message(), (OP_TEXT, msg1), f"{what}: echo of message 1")
        c.send_frame(OP_TEXT, m2, rsv1=True)
        if accepted:
            self.assertEqual(c.read_message(), (OP_TEXT, msg2), f"{what}: echo of message 2")
            c.send_close(1000)
            self.assertEqual(c.read_close()[0], 1000)
            self.assertEqual(self.compression_errors(), before)
        else:
            self.expect_refused(c, what)
            wait_until(lambda: self.compression_errors() > before,
                       what="websocket.errors{error.type=compression} to count the refusal")
            self.assertEqual(self.compression_errors(), before + 1)
            # The refusal ends that connection only.
            other = self.connect("/echo", offer, reply_bits)
            other.send_frame(OP_TEXT, ContextClient().message(msg1), rsv1=True)
            self.assertEqual(other.read_message(), (OP_TEXT, msg1), f"{what}: another client")

    def test_9_bits_accepts_500_back(self):
        self.run_case("permessage-deflate; client_max_window_bits=9", 9, 500, True)

    def test_9_bits_refuses_600_back(self):
        self.run_case("permessage-deflate; client_max_window_bits=9", 9, 600, False)

    def test_9_bits_refuses_4096_back(self):
        self.run_case("permessage-deflate; client_max_window_bits=9", 9, 4096, False)

    def test_server_chosen_10_bits_accepts_1000_back(self):
        self.run_case("permessage-deflate; client_max_window_bits", 10, 1000, True)

    def test_server_chosen_10_bits_refuses_1100_back(self):
        self.run_case("permessage-deflate; client_max_window_bits", 10, 1100, False)

    def test_15_offered_is_capped_at_10_and_refuses_1100_back(self):
        self.run_case("permessage-deflate; client_max_window_bits=15", 10, 1100, False)

    def test_15_bits_accepts_4096_back(self):
        self.run_case("permessage-deflate", None, 4096, True)

    def test_no_context_takeover_refuses_any_reference_to_message_1(self):
        # The client promised not to keep its context: the server's inflater
        # forgets message 1, so even a short distance cannot be resolved.
        self.run_case("permessage-deflate; client_no_context_takeover", None, 500, False)


class PubSubWindow(WindowCase):
    """/ws: two Pings whose ids are HEX and its first 1000 bytes; message 2
    refers back to message 1's start, len(message 1) bytes back."""

    def run_case(self, offer, reply_bits, accepted):
        msg1 = b'{"type":"Ping","id":"' + HEX + b'"}'
        msg2 = b'{"type":"Ping","id":"' + HEX[:1000] + b'"}'
        what = f"/ws {offer!r}"
        m1, m2 = self.two_messages(msg1, msg2, len(msg1))
        c = self.connect("/ws", offer, reply_bits)
        c.send_frame(OP_TEXT, m1, rsv1=True)
        self.assertEqual(c.read_json(), {"type": "Pong", "id": HEX.decode()}, what)
        c.send_frame(OP_TEXT, m2, rsv1=True)
        if accepted:
            self.assertEqual(c.read_json(), {"type": "Pong", "id": HEX[:1000].decode()}, what)
        else:
            self.expect_refused(c, what)

    def test_9_bits_refuses(self):
        self.run_case("permessage-deflate; client_max_window_bits=9", 9, False)

    def test_15_bits_accepts(self):
        self.run_case("permessage-deflate", None, True)


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


class InflaterMemory(unittest.TestCase):
    """300 connections with context takeover each send one compressed
    message; the resident memory that adds is compared between a 9-bit and
    a 15-bit client window (15 bits: the client offers no
    client_max_window_bits, since the server answers an offer of 15 with
    its cap of 10)."""

    N = 300
    # Inflates to more than 32 KiB, so even a 15-bit window is written
    # whole; a few hundred bytes on the wire.
    TEXT = b"window bits reach the inflater " * 1200

    def growth_kib(self, offer, want_bits):
        with WstraceServer("--echo", "--compression", "on", threads=2) as srv:
            clients = []
            try:
                for _ in range(self.N):
                    c = RawClient(srv.port)
                    clients.append(c)
                    negotiate(self, c, "/echo", offer, want_bits)
                srv.wait_stats(lambda s: s["compression"]["connections"] == self.N,
                               what=f"{self.N} compressed connections")
                self.assertEqual(srv.stats()["compression"]["connection_inflaters"], 0)
                # Warm-up messages on four of the connections first, so the
                # workers' own buffers (inflate scratch, compressor output)
                # have reached their size before the baseline.
                payload = ContextClient().message(self.TEXT)
                for c in clients[:4]:
                    c.send_frame(OP_TEXT, payload, rsv1=True)
                    self.assertEqual(c.read_message(), (OP_TEXT, self.TEXT))
                base = vm_rss_kib(srv.pid)
                for c in clients[4:]:
                    c.send_frame(OP_TEXT, payload, rsv1=True)
                for c in clients[4:]:
                    self.assertEqual(c.read_message(), (OP_TEXT, self.TEXT))
                srv.wait_stats(lambda s: s["compression"]["connection_inflaters"] == self.N,
                               what=f"{self.N} per-connection inflaters")
                return vm_rss_kib(srv.pid) - base
            finally:
                for c in clients:
                    c.close()

    def test_15_bit_window_costs_about_32_kib_more_per_connection(self):
        small = self.growth_kib("permessage-deflate; client_max_window_bits=9", 9)
        large = self.growth_kib("permessage-deflate", None)
        n = self.N - 4
        print(f"\n  VmRSS growth for {n} inflaters: 9 bits {small} KiB "
              f"({small / n:.1f} KiB each), 15 bits {large} KiB ({large / n:.1f} KiB each)")
        # Expected: 32 KiB - 512 B more per connection. Half of it is the bar.
        self.assertGreater(large - small, n * 16,
                           f"15-bit windows should cost ~32 KiB more per connection: "
                           f"9 bits +{small} KiB, 15 bits +{large} KiB for {n} connections")


if __name__ == "__main__":
    unittest.main()
