"""Invalid UTF-8 through the whole receive path, on /ws and /echo, split
every way the engine can see it:

- across WebSocket fragments: the bad sequence straddles a continuation
  frame boundary (a fragment ends right after the lead byte, after each
  later byte, or every byte of the sequence is a fragment of its own), also
  with an empty fragment and a Ping between the fragments;
- over several TCP reads: one byte per TCP write (TCP_NODELAY, one sendall
  per byte, so the server reads as little as the kernel lets it), and pieces
  each sent only once the server has read the one before (its
  bytes.received_total in /api/stats says so), so one frame's payload
  arrives cut inside the sequence and the server checks an incomplete frame
  as it grows;
- inside a compressed (permessage-deflate) fragmented message, with and
  without client context takeover. Each fragment carries exactly the deflate
  output of its part (a sync flush ends it), so the straddle is in the
  inflated bytes the validator sees frame by frame; and with one compressed
  byte per fragment, where zlib decides where the inflated output stops.

The bad sequences are UTF-16 surrogates (ED A0 80, ED BF BF), overlong forms
(C0 AF, E0 80 AF, F0 80 80 AF), a code point above U+10FFFF (F4 90 80 80)
and valid prefixes cut off at the end of the message. Each must get Close
1007 read off the wire, then the TCP connection closed; it must never be
echoed or published (a subscriber of the channel it names receives nothing
of it); the server counts each one in
websocket.errors{error.type="invalid_utf8"}; other clients keep being
served. A sequence with a bad byte in the middle must fail the connection
even when the message never finishes: the bytes stop right after the
fragment (or, within one frame, the byte) that makes it invalid.

Valid multi-byte characters (a 4-byte emoji, 3-byte CJK, and the code points
right next to each forbidden range: U+0800, U+D7FF, U+E000, U+FFFF,
U+10000, U+10FFFF) split the same ways pass intact: echoed unchanged on
/echo; on /ws a Message carrying them reaches a subscriber with the same
content."""

import json
import select
import socket
import time
import unittest
import zlib

from wstrace_harness import (IO_TIMEOUT, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
                             ConnectionEnded, Positions, RawClient, WstraceServer, close_payload,
                             encode_frame, raw_subscribe, wait_until)

# (what, bytes, offset in them of the first byte no valid UTF-8 can have
# there). Every byte before that offset is a valid prefix of some character,
# so only a validator that carries its state across frames and reads sees
# the error.
INVALID = [
    ("surrogate U+D800 (ED A0 80)", b"\xed\xa0\x80", 1),
    ("surrogate U+DFFF (ED BF BF)", b"\xed\xbf\xbf", 1),
    ("overlong U+002F in 2 bytes (C0 AF)", b"\xc0\xaf", 0),
    ("overlong U+002F in 3 bytes (E0 80 AF)", b"\xe0\x80\xaf", 1),
    ("overlong U+002F in 4 bytes (F0 80 80 AF)", b"\xf0\x80\x80\xaf", 1),
    ("U+110000, above U+10FFFF (F4 90 80 80)", b"\xf4\x90\x80\x80", 1),
]

# Valid prefixes that the message ends in: invalid only because nothing
# follows them.
TRUNCATED = [
    ("U+1F600 without its last byte (F0 9F 98)", b"\xf0\x9f\x98"),
    ("U+4E2D without its last byte (E4 B8)", b"\xe4\xb8"),
    ("a lone 2-byte lead (C3)", b"\xc3"),
    ("a lone 4-byte lead (F4)", b"\xf4"),
]

VALID = [
    ("U+1F600 emoji", "\U0001F600"),
    ("U+4E2D CJK", "\u4e2d"),
    ("U+00E9", "\u00e9"),
    ("U+0800, the lowest after E0", "\u0800"),
    ("U+D7FF, the last before the surrogates", "\ud7ff"),
    ("U+E000, the first after the surrogates", "\ue000"),
    ("U+FFFF", "\uffff"),
    ("U+10000, the lowest after F0", "\U00010000"),
    ("U+10FFFF, the highest", "\U0010ffff"),
]

TAIL = b"\x00\x00\xff\xff"


def cut_sets(start, n, at_end):
    """Fragment boundaries that make the n-byte sequence at `start` straddle
    frames: after its lead byte, after each later byte but the last, and
    after every one of its bytes (one byte per fragment). When the sequence
    ends the message, also a boundary after it: the last fragment is then
    empty, and only the end of the message makes the sequence invalid."""
    sets = [(start + k,) for k in range(1, n)]
    if n > 2:
        sets.append(tuple(start + k for k in range(1, n)))
    if at_end:
        sets.append(tuple(start + k for k in range(1, n + 1)))
    return sets


def split(payload, cuts):
    bounds = [0, *cuts, len(payload)]
    return [payload[a:b] for a, b in zip(bounds, bounds[1:])]


def part_holding(parts, index):
    """Which part holds byte `index` of the joined payload."""
    pos = 0
    for i, p in enumerate(parts):
        if pos <= index < pos + len(p):
            return i
        pos += len(p)
    raise ValueError(index)


class ClientDeflate:
    """The client's side of permessage-deflate for one connection. With
    context takeover one compressor serves every message of the connection
    (as the negotiated extension allows); without, each message gets a fresh
    one. A decompressor mirrors the server's, to check the frames inflate to
    what the test means them to."""

    def __init__(self, context_takeover):
        self.context_takeover = context_takeover
        self._fresh()

    def _fresh(self):
        self.comp = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self.mirror = zlib.decompressobj(-15)

    def per_part(self, parts):
        """One compressed payload per part; each inflates to exactly its
        part (checked)."""
        if not self.context_takeover:
            self._fresh()
        out, last = [], len(parts) - 1
        for i, p in enumerate(parts):
            data = self.comp.compress(p) + self.comp.flush(zlib.Z_SYNC_FLUSH)
            assert data.endswith(TAIL), data
            if i == last:
                data = data[:-4]  # RFC 7692 §7.2.1: the message drops the final tail
            got = self.mirror.decompress(data + (TAIL if i == last else b""))
            assert got == p, f"fragment {i} inflates to {got!r}, not its part {p!r}"
            out.append(data)
        return out

    def whole(self, payload):
        """The compressed message as one payload."""
        if not self.context_takeover:
            self._fresh()
        data = self.comp.compress(payload) + self.comp.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(TAIL), data
        data = data[:-4]
        assert self.mirror.decompress(data + TAIL) == payload
        return data


# -- what a case writes: a list of pieces (bytes), and which piece carries
# the first bad byte (to leave the message unfinished right after it).

def frames_of(payloads, rsv1=False, between=()):
    """Text frames with these payloads (the first a Text frame, the others
    continuations; FIN on the last), with the frames of `between` after
    each but the last. Returns [(index of the payload, frame bytes)]."""
    out, last = [], len(payloads) - 1
    for i, p in enumerate(payloads):
        out.append((i, encode_frame(OP_TEXT if i == 0 else OP_CONT, p, fin=i == last,
                                    rsv1=rsv1 and i == 0)))
        if i != last:
            out.extend((i, f) for f in between)
    return out


# An empty continuation and a Ping between the fragments: neither may reset
# or disturb the validator's state.
BETWEEN = (encode_frame(OP_CONT, b"", fin=False), encode_frame(OP_PING, b"between"))


def pieces_until(indexed, bad_part):
    """The frames up to and including the one that carries part `bad_part`
    (then nothing: the message never finishes)."""
    out = []
    for i, f in indexed:
        out.append(f)
        if i == bad_part:
            break
    return out


def build_plain(c, parts, payload, bad_index, between=()):
    indexed = frames_of(parts, between=between)
    if bad_index is None:
        return [f for _, f in indexed]
    return pieces_until(indexed, part_holding(parts, bad_index))


def build_plain_between(c, parts, payload, bad_index):
    return build_plain(c, parts, payload, bad_index, between=BETWEEN)


def build_one_frame(c, parts, payload, bad_index):
    """One unfragmented frame, cut into pieces where the parts end (the
    header goes with the first). Unfinished: the frame stops right after
    the bad byte, so the server only ever has an incomplete frame."""
    frame = encode_frame(OP_TEXT, payload)
    head = len(frame) - len(payload)
    end = len(frame) if bad_index is None else head + bad_index + 1
    bounds, pos = [0], head
    for p in parts[:-1]:
        pos += len(p)
        if pos < end:
            bounds.append(pos)
    bounds.append(end)
    return [frame[a:b] for a, b in zip(bounds, bounds[1:])]


def client_deflate(c):
    d = getattr(c, "client_deflate", None)
    if d is None:
        d = c.client_deflate = ClientDeflate("client_no_context_takeover" not in c.extensions)
    return d


def build_deflated(c, parts, payload, bad_index, between=()):
    indexed = frames_of(client_deflate(c).per_part(parts), rsv1=True, between=between)
    if bad_index is None:
        return [f for _, f in indexed]
    return pieces_until(indexed, part_holding(parts, bad_index))


def build_deflated_between(c, parts, payload, bad_index):
    return build_deflated(c, parts, payload, bad_index, between=BETWEEN)


def build_deflated_bytes(c, parts, payload, bad_index):
    """The whole message compressed at once, one compressed byte per
    fragment (the message is always sent whole)."""
    data = client_deflate(c).whole(payload)
    return [f for _, f in frames_of([data[i:i + 1] for i in range(len(data))], rsv1=True)]


# -- how a case's pieces are written

def send_bytewise(sock, data, stop_on_answer):
    """One sendall per byte (TCP_NODELAY is set on the socket). With
    stop_on_answer, stops once the server's answer (its Close) is readable
    or the socket refuses more, so nothing is written to a connection the
    server has already closed. Returns how many bytes were written."""
    for i in range(len(data)):
        if stop_on_answer and select.select([sock], [], [], 0)[0]:
            return i
        try:
            sock.sendall(data[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            return i
    return len(data)


def readable(sock):
    return bool(select.select([sock], [], [], 0)[0])


class Delivery:
    ONE_WRITE = "in one write"
    BYTEWISE = "one byte per write"
    READS = "each piece in its own server read"


class Utf8SplitBase(unittest.TestCase):
    first_failure = None  # what of run_invalid's cases failed first, per class
    """One server (--echo, compression on) per endpoint class. Subclasses set
    `path`, `wrap(seq, at_end)` (the message a sequence is sent in) and
    `check_valid_arrived()`."""

    path = None

    # (name, deflate, build, delivery, each cut set or only the first)
    MODES_FRAGMENTS = [
        ("fragments", None, build_plain, Delivery.ONE_WRITE, True),
        ("fragments", None, build_plain, Delivery.READS, True),
        ("fragments with an empty fragment and a Ping between", None, build_plain_between,
         Delivery.ONE_WRITE, True),
    ]
    MODES_READS = [
        ("fragments", None, build_plain, Delivery.BYTEWISE, True),
        ("one frame", None, build_one_frame, Delivery.BYTEWISE, False),
        ("one frame cut inside the sequence", None, build_one_frame, Delivery.READS, True),
    ]
    MODES_COMPRESSED = [
        ("compressed fragments, context takeover", "takeover", build_deflated,
         Delivery.ONE_WRITE, True),
        ("compressed fragments, client_no_context_takeover", "no_takeover", build_deflated,
         Delivery.ONE_WRITE, True),
        ("compressed fragments", "takeover", build_deflated, Delivery.BYTEWISE, True),
        ("compressed fragments", "no_takeover", build_deflated, Delivery.READS, True),
        ("compressed fragments with an empty fragment and a Ping between", "no_takeover",
         build_deflated_between, Delivery.ONE_WRITE, True),
        ("compressed, one compressed byte per fragment, context takeover", "takeover",
         build_deflated_bytes, Delivery.ONE_WRITE, False),
        ("compressed, one compressed byte per fragment, client_no_context_takeover",
         "no_takeover", build_deflated_bytes, Delivery.ONE_WRITE, False),
    ]

    @classmethod
    def setUpClass(cls):
        cls.srv = WstraceServer("--echo", "--compression", "on", threads=2).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        assert rc == 0, f"wstrace exited with {rc}:\n{cls.srv.stderr_text()[-4000:]}"

    def setUp(self):
        # Connected before the test's cases and checked after them: the
        # failing connections must not disturb these. The watcher subscribes
        # to the channel the test's /ws messages are published on.
        self.channel = f"utf8-{self._testMethodName}"
        self.bystander = RawClient(self.srv.port)
        self.addCleanup(self.bystander.close)
        self.bystander.handshake("/echo")
        self.watcher = RawClient(self.srv.port)
        self.addCleanup(self.watcher.close)
        self.watcher.handshake("/ws")
        self.watched = Positions("the watcher")
        self.watched.subscribed(raw_subscribe(self.watcher, self.channel))

    # -- helpers -------------------------------------------------------------

    def connect(self, deflate=None):
        """A raw client on self.path with TCP_NODELAY. deflate: None,
        "takeover" or "no_takeover"."""
        c = RawClient(self.srv.port)
        self.addCleanup(c.close)
        headers = []
        if deflate == "takeover":
            headers = [("Sec-WebSocket-Extensions", "permessage-deflate")]
        elif deflate == "no_takeover":
            headers = [("Sec-WebSocket-Extensions",
                        "permessage-deflate; client_no_context_takeover")]
        c.handshake(self.path, headers)
        if deflate:
            self.assertTrue(c.deflate, f"permessage-deflate not negotiated: {c.extensions!r}")
        if deflate == "no_takeover":
            self.assertIn("client_no_context_takeover", c.extensions)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return c

    def bytes_received(self):
        return self.srv.stats()["bytes"]["received_total"]

    def deliver(self, c, pieces, delivery, stop_on_answer):
        """Writes the pieces as `delivery` says. READS: each piece only
        after the server has read the ones before (/api/stats
        bytes.received_total has grown by them), so every piece is a read
        of its own. With stop_on_answer, stops when the server has answered
        (its Close is readable)."""
        if delivery == Delivery.ONE_WRITE:
            c.send_raw(b"".join(pieces))
        elif delivery == Delivery.BYTEWISE:
            n = send_bytewise(c.sock, b"".join(pieces), stop_on_answer)
            if not stop_on_answer:
                self.assertEqual(n, sum(map(len, pieces)))
        else:
            for i, piece in enumerate(pieces):
                if stop_on_answer and readable(c.sock):
                    return
                base = self.bytes_received()
                try:
                    c.send_raw(piece)
                except (BrokenPipeError, ConnectionResetError):
                    return
                if i == len(pieces) - 1:
                    return
                wait_until(lambda: (stop_on_answer and readable(c.sock))
                           or self.bytes_received() >= base + len(piece),
                           what=f"the server to read piece {i} ({len(piece)} bytes)")

    def utf8_errors(self):
        v = self.srv.metrics().value("websocket_errors_total", error_type="invalid_utf8")
        self.assertIsNotNone(v, "no websocket_errors_total series in /metrics")
        return int(v)

    def expect_1007(self, c, what):
        """Reads up to the server's Close (Pings and Pongs skipped; any data
        frame means the bad message was accepted), checks 1007, then waits
        for the server to close the TCP connection. One deadline for the
        whole wait."""
        end = time.monotonic() + IO_TIMEOUT
        while True:
            left = end - time.monotonic()
            if left <= 0:
                self.fail(f"{what}: no Close from the server within {IO_TIMEOUT:g} s")
            try:
                f = c.read_frame(timeout=left)
            except socket.timeout:  # also the harness's WaitTimeout (a TimeoutError)
                self.fail(f"{what}: no Close from the server within {IO_TIMEOUT:g} s")
            except ConnectionEnded:
                self.fail(f"{what}: TCP connection closed without a Close frame")
            if f.opcode in (OP_PING, OP_PONG):
                continue
            if f.opcode != OP_CLOSE:
                self.fail(f"{what}: the server answered {f!r} instead of Close 1007")
            break
        self.assertEqual(f.close_code(), 1007, f"{what}: close reason {f.close_reason()!r}")
        try:
            c.expect_eof()
        except socket.timeout:
            self.fail(f"{what}: Close 1007 sent but the TCP connection stayed open "
                      f"for {IO_TIMEOUT:g} s")

    def assert_others_served(self):
        """The bystander still gets its echo, and the watcher's next message
        on the channel is a fresh sentinel: nothing a failed connection sent
        was published."""
        text = "still here \u00e9\U0001F600"
        self.bystander.send_text(text)
        self.assertEqual(self.bystander.read_message(), (OP_TEXT, text.encode()),
                         "the bystander's echo")
        sentinel = f"sentinel after {self._testMethodName}"
        with RawClient(self.srv.port) as pub:
            pub.handshake("/ws")
            pub.send_json({"type": "Message", "channel": self.channel, "content": sentinel})
            pub.send_json({"type": "Ping", "id": "sent"})
            self.assertEqual(pub.read_json(), {"type": "Pong", "id": "sent"})
        got = self.watcher.read_json()
        self.assertEqual((got.get("type"), got.get("content")), ("Message", sentinel),
                         "the subscriber received something other than the sentinel: "
                         "a message with invalid UTF-8 was published")
        # Whole, and at the next offset: nothing was published in between.
        self.watched.message(got, self.channel, sentinel)

    def run_invalid(self, cases):
        """cases: (what, deflate, send) with send(client) writing the bytes.
        Each on a fresh connection; each must be closed with 1007 and
        counted once."""
        # Fail, don't crawl: a validator that lets a sequence through makes
        # every case wait IO_TIMEOUT for a Close that never comes (hundreds
        # of cases). The first failing case ends this test and the rest of
        # the class's: they would only say the same thing, minutes later.
        cls = type(self)
        if cls.first_failure is not None:
            self.fail(f"not run: an earlier case of {cls.__name__} failed "
                      f"({cls.first_failure}); each case would wait up to {IO_TIMEOUT:g} s")
        before = self.utf8_errors()
        errors_before = self.srv.stats()["errors_total"]
        for i, (what, deflate, send) in enumerate(cases):
            passed = False
            with self.subTest(what):
                c = self.connect(deflate)
                send(c)
                self.expect_1007(c, what)
                c.close()
                passed = True
            if not passed:
                cls.first_failure = what
                self.fail(f"stopped after the first failing case ({what}); "
                          f"{len(cases) - i - 1} more not run")
        n = len(cases)
        wait_until(lambda: self.utf8_errors() - before >= n,
                   what=f"websocket.errors{{error.type=invalid_utf8}} to grow by {n}")
        self.assertEqual(self.utf8_errors() - before, n,
                         "each failed connection counted once as invalid_utf8")
        self.assertGreaterEqual(self.srv.stats()["errors_total"] - errors_before, n,
                                "/api/stats errors_total")
        self.assert_others_served()

    def bad_cases(self, modes):
        """Every (sequence, cut set) of INVALID and TRUNCATED for each mode,
        sent whole and (when a byte in the middle is bad) left unfinished
        right after the bad byte."""
        cases = []
        seqs = [(w, s, off, False) for w, s, off in INVALID] + \
               [(w, s, None, True) for w, s in TRUNCATED]
        for name, deflate, build, delivery, each_cut in modes:
            finished_only = build is build_deflated_bytes
            for what, seq, off, at_end in seqs:
                payload = self.wrap(seq, at_end)
                start = payload.index(seq)
                bad_index = None if off is None else start + off
                sets = cut_sets(start, len(seq), at_end)
                for cuts in (sets if each_cut else sets[:1]):
                    parts = split(payload, cuts)
                    for finished in ([True] if bad_index is None or finished_only
                                     else [True, False]):
                        label = (f"{what}, {name}, parts {[len(p) for p in parts]}, {delivery}"
                                 + ("" if finished else ", left unfinished after the bad byte"))
                        cases.append((label, deflate,
                                      self._sender(build, parts, payload,
                                                   None if finished else bad_index, delivery)))
        return cases

    def _sender(self, build, parts, payload, bad_index, delivery):
        def send(c):
            self.deliver(c, build(c, parts, payload, bad_index), delivery, stop_on_answer=True)
        return send

    # -- the tests ------------------------------------------------------------

    def test_invalid_split_across_fragments(self):
        self.run_invalid(self.bad_cases(self.MODES_FRAGMENTS))

    def test_invalid_over_many_tcp_reads(self):
        self.run_invalid(self.bad_cases(self.MODES_READS))

    def test_invalid_in_compressed_fragments(self):
        self.run_invalid(self.bad_cases(self.MODES_COMPRESSED))

    def test_invalid_across_check_chunks_of_an_incomplete_frame(self):
        # A long frame that has not fully arrived is checked in chunks of a
        # few hundred bytes; the sequence straddles offsets 512 and 1024 of
        # the payload, and the frame never completes. Also as the second
        # fragment of a message, and delivered in reads that end right
        # after the lead byte.
        cases = []
        prefix = self.wrap(b"\x00", False).index(b"\x00")
        for what, seq, off in INVALID:
            for boundary in (512, 1024):
                for k in range(1, len(seq)):
                    start = boundary - k
                    body = b"a" * (start - prefix) + seq + b"b" * 3000
                    payload = self.wrap(body, False)
                    assert payload.index(seq) == start
                    for first_fragment in (False, True):
                        frame = encode_frame(OP_CONT if first_fragment else OP_TEXT, payload)
                        head = len(frame) - len(payload)
                        cut = head + start + 1
                        pieces = [frame[:cut], frame[cut:head + 1500]]
                        if first_fragment:
                            pieces.insert(0, encode_frame(OP_TEXT, b"first fragment ", fin=False))
                        for delivery in (Delivery.ONE_WRITE, Delivery.READS):
                            label = (f"{what} at payload offset {start} of an incomplete "
                                     f"{len(payload)}-byte "
                                     + ("continuation" if first_fragment else "frame")
                                     + f", {delivery}")
                            cases.append((label, None, self._pieces_sender(pieces, delivery)))
        self.run_invalid(cases)

    def _pieces_sender(self, pieces, delivery):
        def send(c):
            self.deliver(c, pieces, delivery, stop_on_answer=True)
        return send

    def test_invalid_close_reason_one_byte_per_write(self):
        # A Close frame's reason is UTF-8 too (RFC 6455 §5.5.1); it arrives
        # over as many reads as its bytes.
        seqs = [(w, s, False) for w, s, _ in INVALID] + [(w, s, True) for w, s in TRUNCATED]
        cases = []
        for what, seq, at_end in seqs:
            reason = b"bye " + seq + (b"" if at_end else b" now")
            frame = encode_frame(OP_CLOSE, close_payload(1000, reason))
            cases.append((f"{what} in a close reason, one byte per write", None,
                          self._pieces_sender([frame], Delivery.BYTEWISE)))
        self.run_invalid(cases)

    def test_valid_close_reason_one_byte_per_write(self):
        for what, ch in VALID:
            with self.subTest(what):
                c = self.connect()
                reason = ("bye " + ch + " now").encode()
                self.deliver(c, [encode_frame(OP_CLOSE, close_payload(1000, reason))],
                             Delivery.BYTEWISE, stop_on_answer=False)
                self.assertEqual(c.read_close()[0], 1000, f"{what}: the Close echoed")
                c.expect_eof()

    def test_valid_multibyte_split_every_way(self):
        before = self.utf8_errors()
        sent = 0
        for name, deflate, build, delivery, each_cut in (
                self.MODES_FRAGMENTS + self.MODES_READS + self.MODES_COMPRESSED):
            # One connection per mode: many messages in a row also check the
            # validator (and, with context takeover, the inflater) carry on
            # correctly from one message to the next.
            c = self.connect(deflate)
            for what, ch in VALID:
                seq = ch.encode()
                payload = self.wrap(seq, False)
                sets = cut_sets(payload.index(seq), len(seq), False)
                for cuts in (sets if each_cut else sets[:1]):
                    parts = split(payload, cuts)
                    label = f"{what}, {name}, parts {[len(p) for p in parts]}, {delivery}"
                    with self.subTest(label):
                        self.deliver(c, build(c, parts, payload, None), delivery,
                                     stop_on_answer=False)
                        self.check_valid_arrived(c, payload, label)
                        sent += 1
            c.close()
        self.assertGreater(sent, 200)
        self.assertEqual(self.utf8_errors(), before, "valid text counted as invalid_utf8")
        self.assert_others_served()

    def test_valid_across_check_chunks_of_an_incomplete_frame(self):
        # Multi-byte characters over offsets 512 and 1024 of a long frame
        # that arrives in three reads: every offset inside a 4-, 3- and
        # 2-byte character lands on those boundaries once.
        before = self.utf8_errors()
        c = self.connect()
        unit = "\U0001F600\u4e2d\u00e9".encode()  # 4 + 3 + 2 bytes
        for shift in range(len(unit)):
            payload = self.wrap(b"s" * shift + unit * 200, False)
            frame = encode_frame(OP_TEXT, payload)
            pieces = [frame[:700], frame[700:1300], frame[1300:]]
            label = f"a {len(payload)}-byte frame in three reads, shifted by {shift}"
            with self.subTest(label):
                self.deliver(c, pieces, Delivery.READS, stop_on_answer=False)
                self.check_valid_arrived(c, payload, label)
        self.assertEqual(self.utf8_errors(), before, "valid text counted as invalid_utf8")
        self.assert_others_served()


class Utf8SplitEcho(Utf8SplitBase):
    path = "/echo"

    def wrap(self, seq, at_end):
        return b"before " + seq + (b"" if at_end else b" after")

    def check_valid_arrived(self, c, payload, label):
        self.assertEqual(c.read_message(), (OP_TEXT, payload), f"{label}: the echo")


class Utf8SplitPubSub(Utf8SplitBase):
    path = "/ws"

    def wrap(self, seq, at_end):
        head = b'{"type":"Message","channel":"' + self.channel.encode() + b'","content":"before '
        return head + seq + (b"" if at_end else b' after"}')

    def check_valid_arrived(self, c, payload, label):
        # A Ping after the Message: its Pong shows the publisher's connection
        # took the Message (a Close would arrive instead).
        c.send_json({"type": "Ping", "id": "after"})
        self.assertEqual(c.read_json(), {"type": "Pong", "id": "after"}, label)
        want = json.loads(payload.decode("utf-8"))
        self.assertEqual(set(want), {"type", "channel", "content"}, label)
        got = self.watcher.read_json()
        self.assertEqual({k: got.get(k) for k in want}, want, f"{label}: what the subscriber got")
        self.watched.message(got, self.channel, want["content"])


del Utf8SplitBase  # only its subclasses are tests

if __name__ == "__main__":
    unittest.main()
