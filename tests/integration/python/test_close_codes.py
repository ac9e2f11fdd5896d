"""Every close code of the client protocol (docs/PROTOCOL.md), provoked over a raw TCP socket with
the test's own (masked) frame writer; RFC 6455 §5-7 violations.

Each test reads the server's Close frame off the wire and checks its code,
then that the server closes the TCP connection."""

import asyncio
import json
import os
import struct
import unittest

from wstrace_harness import (IO_TIMEOUT, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG,
                             OP_TEXT, AsyncTestCase, ConnectionEnded, Deadline, Positions,
                             RawClient, WstraceServer, close_payload, deflate_message,
                             encode_frame, make_jwt, raw_subscribe, recv_json, stalled_subscriber,
                             subscribe, ws_connect)

MAX_MESSAGE = 4096
# Bounds for the slow-consumer floods: far more than it takes to pass
# --max-backpressure plus the socket buffers, then the test fails.
FLOOD_TIME = 60.0


class RawCase(unittest.TestCase):
    """One server for the class; one raw connection per check."""
    server_args = ("--max-message-size", "4KiB", "--compression", "on")

    @classmethod
    def setUpClass(cls):
        cls.srv = WstraceServer(*cls.server_args, threads=2).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        assert rc == 0, f"wstrace exited with {rc}:\n{cls.srv.stderr_text()[-4000:]}"

    def connect(self, headers=None, path="/ws", **kw):
        c = RawClient(self.srv.port, **kw)
        self.addCleanup(c.close)
        c.handshake(path, headers)
        return c

    def expect_close(self, c, code, answer=True):
        """Reads up to the server's Close; checks the code; answers it (if
        the socket still takes it) and waits for the server's EOF."""
        got, reason = c.read_close()
        self.assertEqual(got, code, f"close reason {reason!r}")
        if answer:
            try:
                c.send_close(got)
            except OSError:
                pass  # the server may already have closed the socket
        c.expect_eof()
        return reason

    def provoke(self, data, code, headers=None):
        c = self.connect(headers)
        c.send_raw(data)
        return self.expect_close(c, code)

    def assert_alive(self, c):
        c.send_json({"type": "Ping", "id": "alive"})
        self.assertEqual(c.read_json(), {"type": "Pong", "id": "alive"})


class NormalClose(RawCase):

    def test_1000_client_close_is_echoed(self):
        c = self.connect()
        c.send_close(1000, "bye")
        f = c.read_frame()
        self.assertEqual(f.opcode, OP_CLOSE)
        self.assertEqual(f.close_code(), 1000)
        self.assertFalse(f.masked, "server frames must not be masked")
        c.expect_eof()

    def test_1000_echoed_after_pending_replies(self):
        c = self.connect()
        c.send_json({"type": "Ping", "id": 1})
        c.send_close(1000)
        self.assertEqual(c.read_json(), {"type": "Pong", "id": 1})
        self.assertEqual(c.read_frame().close_code(), 1000)
        c.expect_eof()

    def test_close_without_code_is_answered(self):
        c = self.connect()
        c.send_frame(OP_CLOSE, b"")
        f = c.read_frame()
        self.assertEqual(f.opcode, OP_CLOSE)
        self.assertIn(f.close_code(), (None, 1000))
        c.expect_eof()

    def test_application_close_codes_are_valid(self):
        for code in (1000, 1001, 1003, 1011, 3000, 4999):
            c = self.connect()
            c.send_close(code, "ok")
            self.assertEqual(c.read_frame().opcode, OP_CLOSE, code)
            c.expect_eof()

    def test_ping_is_answered_with_pong_and_same_payload(self):
        c = self.connect()
        c.send_frame(OP_PING, b"hello")
        f = c.read_frame()
        self.assertEqual((f.opcode, f.payload), (OP_PONG, b"hello"))
        # An unsolicited Pong is ignored.
        c.send_frame(OP_PONG, b"x")
        self.assert_alive(c)


class ProtocolViolation1002(RawCase):

    def test_unmasked_frame(self):
        self.provoke(encode_frame(OP_TEXT, b'{"type":"Ping"}', mask=False), 1002)

    def test_reserved_bits(self):
        for kw in ({"rsv2": True}, {"rsv3": True}):
            self.provoke(encode_frame(OP_TEXT, b'{"type":"Ping"}', **kw), 1002)

    def test_rsv1_without_negotiated_compression(self):
        # No Sec-WebSocket-Extensions offered: RSV1 means nothing.
        self.provoke(encode_frame(OP_TEXT, deflate_message(b'{"type":"Ping"}'), rsv1=True), 1002)

    def test_rsv1_on_control_frame(self):
        c = self.connect([("Sec-WebSocket-Extensions", "permessage-deflate")])
        self.assertTrue(c.deflate)
        c.send_frame(OP_PING, b"", rsv1=True)
        self.expect_close(c, 1002)

    def test_reserved_opcodes(self):
        for op in (0x3, 0x7, 0xB, 0xF):
            self.provoke(encode_frame(op, b"x"), 1002)

    def test_fragmented_control_frame(self):
        self.provoke(encode_frame(OP_PING, b"x", fin=False), 1002)

    def test_control_frame_over_125_bytes(self):
        self.provoke(encode_frame(OP_PING, b"x" * 126), 1002)

    def test_close_payload_of_one_byte(self):
        self.provoke(encode_frame(OP_CLOSE, b"\x03"), 1002)

    def test_invalid_close_codes(self):
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535):
            self.provoke(encode_frame(OP_CLOSE, close_payload(code)), 1002)

    def test_64_bit_length_with_the_top_bit_set(self):
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, (1 << 63) | 5)
        self.provoke(head + os.urandom(4) + b"hello", 1002)

    def test_continuation_without_a_message(self):
        self.provoke(encode_frame(OP_CONT, b"x"), 1002)

    def test_new_message_inside_a_fragmented_one(self):
        self.provoke(encode_frame(OP_TEXT, b'{"type":', fin=False)
                     + encode_frame(OP_TEXT, b'"Ping"}'), 1002)


class Fragmentation(RawCase):

    def test_fragments_with_interleaved_control_frames(self):
        c = self.connect()
        c.send_raw(encode_frame(OP_TEXT, b'{"type":"Pi', fin=False)
                   + encode_frame(OP_PING, b"p1")
                   + encode_frame(OP_CONT, b'ng","id":', fin=False)
                   + encode_frame(OP_CONT, b"", fin=False)
                   + encode_frame(OP_PING, b"p2")
                   + encode_frame(OP_CONT, b'"frag"}'))
        f1, f2 = c.read_frame(), c.read_frame()
        self.assertEqual([(f1.opcode, f1.payload), (f2.opcode, f2.payload)],
                         [(OP_PONG, b"p1"), (OP_PONG, b"p2")])
        self.assertEqual(c.read_json(), {"type": "Pong", "id": "frag"})

    def test_one_byte_fragments(self):
        c = self.connect()
        msg = '{"type":"Ping","id":"é€😀é€😀"}'.encode()
        c.send_raw(b"".join(encode_frame(OP_TEXT if i == 0 else OP_CONT, msg[i:i + 1],
                                         fin=i == len(msg) - 1) for i in range(len(msg))))
        self.assertEqual(c.read_json(), {"type": "Pong", "id": "é€😀é€😀"})

    def test_close_in_the_middle_of_a_fragmented_message(self):
        c = self.connect()
        c.send_raw(encode_frame(OP_TEXT, b'{"type":', fin=False) + encode_frame(OP_CLOSE, close_payload(1000)))
        self.assertEqual(c.read_close()[0], 1000)
        c.expect_eof()

    def test_nothing_after_the_close_is_processed(self):
        c = self.connect()
        c.send_raw(encode_frame(OP_CLOSE, close_payload(1000))
                   + encode_frame(OP_TEXT, b'{"type":"Ping"}'))
        f = c.read_frame()
        self.assertEqual(f.close_code(), 1000)
        with self.assertRaises(ConnectionEnded):
            c.read_frame()

    def test_control_frame_of_125_bytes_is_fine(self):
        c = self.connect()
        c.send_frame(OP_PING, b"p" * 125)
        f = c.read_frame()
        self.assertEqual((f.opcode, f.payload), (OP_PONG, b"p" * 125))
        c.send_close(1000, "r" * 123)
        self.assertEqual(c.read_close()[0], 1000)

    def test_valid_utf8_split_across_fragments(self):
        c = self.connect()
        text = '{"type":"Ping","id":"€😀"}'.encode()
        cut1 = text.index(b"\xe2") + 1      # inside the 3-byte sequence
        cut2 = text.index(b"\xf0") + 2      # inside the 4-byte sequence
        c.send_raw(encode_frame(OP_TEXT, text[:cut1], fin=False)
                   + encode_frame(OP_CONT, text[cut1:cut2], fin=False)
                   + encode_frame(OP_CONT, text[cut2:]))
        self.assertEqual(c.read_json(), {"type": "Pong", "id": "€😀"})

    def test_lengths_7_and_16_bits(self):
        # (--max-message-size is 4KiB here: the 64-bit form is in test_echo.)
        c = self.connect()
        pos = Positions()
        pos.subscribed(raw_subscribe(c, "len"))
        for n in (100, 126, 3000):
            c.send_json({"type": "Message", "channel": "len", "content": "z" * n})
            pos.message(c.read_json(), "len", "z" * n)


class InvalidUtf8_1007(RawCase):

    def test_invalid_bytes(self):
        for bad in (b'{"type":"\xff"}', b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                    b"abc\xe2\x82"):
            self.provoke(encode_frame(OP_TEXT, bad), 1007)

    def test_invalid_across_fragments(self):
        # Each fragment alone could start or end a valid sequence; together
        # they are invalid.
        self.provoke(encode_frame(OP_TEXT, b'{"id":"\xe2\x82', fin=False)
                     + encode_frame(OP_CONT, b'("}'), 1007)

    def test_fails_at_first_bad_byte_without_waiting_for_the_end(self):
        # The message never finishes: the server must not wait for it.
        self.provoke(encode_frame(OP_TEXT, b'{"type":"Ping\xff', fin=False), 1007)

    def test_truncated_sequence_at_end_of_message(self):
        self.provoke(encode_frame(OP_TEXT, b'{"a":"', fin=False)
                     + encode_frame(OP_CONT, b"\xf0\x9f\x98"), 1007)

    def test_invalid_utf8_in_close_reason(self):
        self.provoke(encode_frame(OP_CLOSE, close_payload(1000, b"\xff\xfe")), 1007)

    def test_invalid_utf8_inside_compressed_message(self):
        c = self.connect([("Sec-WebSocket-Extensions", "permessage-deflate")])
        self.assertTrue(c.deflate)
        c.send_text(b'{"type":"\xff\xfe"}', compress=True)
        self.expect_close(c, 1007)

    def test_compressed_first_fragment_fails_without_waiting_for_the_end(self):
        # A compressed message is inflated frame by frame: a bad byte in the
        # first fragment fails it although the message never finishes.
        c = self.connect([("Sec-WebSocket-Extensions", "permessage-deflate")])
        self.assertTrue(c.deflate)
        c.send_raw(encode_frame(OP_TEXT, deflate_message(b'{"type":"Ping","id":"\xff\xfe'),
                                fin=False, rsv1=True))
        self.expect_close(c, 1007)


class TooBig1009(RawCase):

    def test_frame_over_max_message_size(self):
        self.provoke(encode_frame(OP_TEXT, b"x" * (MAX_MESSAGE + 1)), 1009)

    def test_declared_length_alone_is_enough(self):
        # A 64-bit length of 1 TiB and no payload: refused from the header.
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 40) + os.urandom(4)
        self.provoke(head, 1009)

    def test_fragments_adding_up_over_the_limit(self):
        part = b"y" * 1500
        self.provoke(encode_frame(OP_TEXT, part, fin=False)
                     + encode_frame(OP_CONT, part, fin=False)
                     + encode_frame(OP_CONT, part), 1009)

    def test_binary_over_the_limit(self):
        self.provoke(encode_frame(OP_BINARY, b"\0" * (MAX_MESSAGE + 1)), 1009)

    def test_at_the_limit_is_fine(self):
        c = self.connect()
        head, tail = '{"type":"Ping","id":"', '"}'
        msg = head + "p" * (MAX_MESSAGE - len(head) - len(tail)) + tail
        self.assertEqual(len(msg), MAX_MESSAGE)
        c.send_text(msg)
        self.assertEqual(c.read_json()["type"], "Pong")

    def test_compressed_message_inflating_over_the_limit(self):
        c = self.connect([("Sec-WebSocket-Extensions", "permessage-deflate")])
        self.assertTrue(c.deflate)
        bomb = deflate_message(b'{"type":"Ping","id":"' + b"a" * 100000 + b'"}')
        self.assertLess(len(bomb), MAX_MESSAGE)  # small on the wire
        c.send_frame(OP_TEXT, bomb, rsv1=True)
        self.expect_close(c, 1009)

    def test_compressed_message_under_the_limit_is_fine(self):
        c = self.connect([("Sec-WebSocket-Extensions", "permessage-deflate")])
        c.send_text('{"type":"Ping","id":"' + "b" * 3000 + '"}', compress=True)
        self.assertEqual(c.read_json()["id"], "b" * 3000)


class Policy1008(RawCase):
    server_args = ("--auth-secret", "k3y")

    def test_bad_token_gets_101_then_1008(self):
        for path in ("/ws?token=bad", "/ws?token=" + make_jwt({"sub": "x"}, "other")):
            c = self.connect(path=path)
            self.expect_close(c, 1008)

    def test_bad_bearer_header_gets_1008(self):
        c = self.connect([("Authorization", "Bearer " + make_jwt({"sub": "x"}, "nope"))])
        self.expect_close(c, 1008)

    def test_good_token_is_not_closed(self):
        c = self.connect(path="/ws?token=" + make_jwt({"sub": "bob"}, "k3y"))
        raw_subscribe(c, "ok", id=1)


class SlowConsumer4429(AsyncTestCase):

    async def test_reader_that_stops_is_closed_with_4429_and_others_get_everything(self):
        # A long --close-timeout: the Close 4429 waits behind what is already
        # written until the slow client reads again, however late that is.
        with WstraceServer("--max-backpressure", "64KiB", "--close-timeout", "60s",
                           threads=2) as srv:
            slow = stalled_subscriber(self, srv.port, "feed")

            normal = await ws_connect(srv.url())
            pub = await ws_connect(srv.url())
            pos = Positions("the normal subscriber")
            pos.subscribed(await subscribe(normal, "feed", epoch=slow.subscribed["epoch"],
                                           offset=slow.subscribed["offset"]))
            content = "m" * 4000
            sent = 0
            # Publish in batches that the normal reader drains before the
            # next (about 40 KB in flight: under the limit), until the
            # server has dropped the slow reader; bounded in count and time.
            flood = Deadline(FLOOD_TIME, "no slow consumer disconnect")
            while sent < 5000 and not flood.expired():
                for _ in range(10):
                    await pub.send(json.dumps({"type": "Message", "channel": "feed",
                                               "content": f"{sent}:{content}"}))
                    sent += 1
                for i in range(sent - 10, sent):
                    m = pos.message(await recv_json(normal), "feed")
                    self.assertEqual(m["content"].split(":")[0], str(i))
                if srv.stats()["slow_consumer_disconnects_total"] >= 1:
                    break
            s = srv.stats()
            self.assertEqual(s["slow_consumer_disconnects_total"], 1,
                             f"not dropped after {sent} messages of 4 KB to a reader that stopped "
                             f"(in {flood.elapsed():.1f} s): is --max-backpressure enforced?")
            self.assertEqual(srv.metrics().value("websocket_slow_consumer_disconnects_total"), 1)
            # A few more after the drop: the normal subscriber still gets
            # every one.
            for i in range(sent, sent + 20):
                await pub.send(json.dumps({"type": "Message", "channel": "feed",
                                           "content": f"{i}:x"}))
                pos.message(await recv_json(normal), "feed", f"{i}:x")
            self.assertEqual(await asyncio.wait_for(self._ping(normal), IO_TIMEOUT), "Pong")

            # The slow client now reads what reached it: Messages, then the
            # Close 4429.
            code = None
            seq = []
            slow_pos = Positions("the slow consumer")
            slow_pos.subscribed(slow.subscribed)
            d = Deadline(IO_TIMEOUT, "the slow consumer read no Close frame")
            try:
                while True:
                    f = slow.read_frame(deadline=d)
                    if f.opcode == OP_CLOSE:
                        code = f.close_code()
                        break
                    if f.opcode == OP_TEXT and f.fin:
                        m = slow_pos.message(json.loads(f.payload), "feed")
                        seq.append(int(m["content"].split(":")[0]))
            except ConnectionEnded:
                pass
            self.assertEqual(code, 4429, "no Close frame before the TCP close")
            print(f"\nslow consumer: dropped after {sent} messages; it read {len(seq)}, "
                  f"then {'Close %d' % code if code else 'the TCP close'}")
            # What it did get is a gapless prefix: no message lost or reordered
            # in the middle of the stream.
            self.assertEqual(seq, list(range(len(seq))))
            self.assertLess(len(seq), sent)
            await normal.close()
            await pub.close()

    async def _ping(self, ws):
        await ws.send('{"type":"Ping"}')
        return (await recv_json(ws))["type"]


class SlowConsumer4429OnTheWire(unittest.TestCase):
    """The slow consumer's Close 4429 itself, read off the wire: the reader
    stops until the server reports the drop, then reads everything that was
    already written for it (a gapless prefix of the stream, the partly
    written frame completed), then Close 4429, then the TCP close. The close
    timeout is long so the Close waits in the queue for the reader."""

    def test_stopped_reader_gets_what_was_buffered_then_close_4429(self):
        with WstraceServer("--max-backpressure", "64KiB", "--close-timeout", "60s",
                           "--heartbeat-interval", "0", threads=2) as srv:
            slow = stalled_subscriber(self, srv.port, "feed")
            pub = RawClient(srv.port)  # not subscribed: it gets no copies
            self.addCleanup(pub.close)
            pub.handshake()

            # The reader stops; publish until the server reports the drop
            # (bounded: 10000 x 1 KB is far past 64 KiB plus the socket
            # buffers, at most 4 MiB + 4 KiB on Linux by default).
            content = "s" * 1000
            sent = 0
            flood = Deadline(FLOOD_TIME, "no slow consumer disconnect")
            while (sent < 10000 and not flood.expired()
                   and srv.stats()["slow_consumer_disconnects_total"] == 0):
                for _ in range(20):
                    pub.send_json({"type": "Message", "channel": "feed",
                                   "content": f"{sent}:{content}"})
                    sent += 1
            # Every publication handled (slow's Subscribe + `sent`), or the
            # drop seen: then the drop must have happened.
            s = srv.wait_stats(lambda s: s["slow_consumer_disconnects_total"] == 1
                               or s["messages"]["received_total"] >= sent + 1,
                               what=f"{sent} publications handled")
            self.assertEqual(s["slow_consumer_disconnects_total"], 1,
                             f"no slow consumer disconnect after {sent} messages of 1 KB to a "
                             "reader that stopped: is --max-backpressure enforced?")

            # The reader resumes: every message written before the drop, in
            # order, then the Close 4429 and nothing after it.
            seq = []
            pos = Positions("the slow consumer")
            pos.subscribed(slow.subscribed)
            d = Deadline(IO_TIMEOUT, "the slow consumer read no Close frame")
            while True:
                f = slow.read_frame(deadline=d)
                if f.opcode == OP_CLOSE:
                    code, reason = f.close_code(), f.close_reason()
                    break
                if f.opcode == OP_PING:
                    continue
                self.assertEqual(f.opcode, OP_TEXT, repr(f))
                self.assertTrue(f.fin, repr(f))
                pos.message(json.loads(f.payload), "feed", f"{len(seq)}:{content}")
                seq.append(len(seq))
            self.assertEqual(code, 4429, f"close reason {reason!r}")
            self.assertIn("slow consumer", reason)
            # (All of them when the drop kept only a partly written run:
            # how many depends on how the server batched them.)
            self.assertGreater(len(seq), 0)
            self.assertLessEqual(len(seq), sent)
            slow.expect_eof()
            print(f"\nslow consumer on the wire: {sent} published, {len(seq)} read, "
                  f"then Close {code}")


if __name__ == "__main__":
    unittest.main()
