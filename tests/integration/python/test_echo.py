"""The /echo endpoint (--echo): text and binary echoed as they came,
fragmented, compressed, and with the same RFC 6455 checks as /ws."""

import os
import unittest

import websockets

from wstrace_harness import (OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT, AsyncTestCase,
                             RawClient, WstraceServer, deflate_message, encode_frame, recv,
                             recv_json, ws_connect)


class EchoWebsockets(AsyncTestCase):

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.srv = WstraceServer("--echo", "--compression", "on", threads=2).start()

    async def asyncTearDown(self):
        self.assertEqual(self.srv.stop(), 0)

    async def roundtrip(self, ws, msgs):
        for m in msgs:
            await ws.send(m)
            got = await recv(ws, what="echo")
            self.assertEqual(type(got), type(m) if not isinstance(m, list) else type(m[0]))
            want = m if not isinstance(m, list) else type(m[0])().join(m)
            self.assertEqual(got, want)

    async def test_text_and_binary_plain(self):
        ws = await ws_connect(self.srv.url("/echo"))
        await self.roundtrip(ws, ["hello", "", "ünïcødé 😀", "x" * 70000,
                                  b"\x00\x01\xff", b"", os.urandom(100000)])
        # Not the pub/sub protocol: JSON is echoed, not interpreted.
        await self.roundtrip(ws, ['{"type":"Ping"}', "not json"])
        await ws.close()
        self.assertEqual(ws.close_code, 1000)

    async def test_fragmented(self):
        ws = await ws_connect(self.srv.url("/echo"))
        await self.roundtrip(ws, [["frag", "mented ", "text"], [b"\x01", b"\x02\x03", b""]])
        await ws.close()

    async def test_compressed(self):
        ws = await ws_connect(self.srv.url("/echo"), compression="deflate")
        self.assertIn("permessage-deflate", ws.response_headers["Sec-WebSocket-Extensions"])
        s0 = self.srv.stats()["bytes"]
        text = "compress me " * 20000
        await self.roundtrip(ws, [text, text.encode(), ["a" * 5000, "b" * 5000],
                                  os.urandom(5000)])
        s1 = self.srv.stats()["bytes"]
        self.assertLess(s1["sent_total"] - s0["sent_total"], 3 * len(text) // 10 + 30000)
        await ws.close()

    async def test_pubsub_path_still_pubsub(self):
        ws = await ws_connect(self.srv.url("/ws"))
        await ws.send('{"type":"Ping","id":1}')
        self.assertEqual(await recv_json(ws), {"type": "Pong", "id": 1})
        await ws.close()


class EchoRaw(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = WstraceServer("--echo", "--compression", "on", "--max-message-size", "200KiB",
                                threads=2).start()

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0, cls.srv.stderr_text()[-3000:]

    def connect(self, headers=None):
        c = RawClient(self.srv.port)
        self.addCleanup(c.close)
        c.handshake("/echo", headers)
        return c

    def test_64_bit_length_and_unmasked_reply(self):
        c = self.connect()
        data = os.urandom(70000)
        c.send_frame(OP_BINARY, data)
        f = c.read_frame()
        self.assertEqual((f.opcode, f.fin, f.masked, f.payload), (OP_BINARY, True, False, data))

    def test_fragments_with_pings_in_between(self):
        c = self.connect()
        c.send_raw(encode_frame(OP_TEXT, b"one ", fin=False) + encode_frame(OP_PING, b"a")
                   + encode_frame(OP_CONT, b"two ", fin=False) + encode_frame(OP_PING, b"b")
                   + encode_frame(OP_CONT, "thrée".encode()))
        frames = [c.read_frame() for _ in range(2)]
        self.assertEqual([(f.opcode, f.payload) for f in frames], [(OP_PONG, b"a"), (OP_PONG, b"b")])
        self.assertEqual(c.read_message(), (OP_TEXT, "one two thrée".encode()))

    def test_compressed_both_ways(self):
        c = self.connect([("Sec-WebSocket-Extensions", "permessage-deflate")])
        self.assertTrue(c.deflate)
        text = b"deflate " * 5000
        c.send_text(text, compress=True)
        f = c.read_frame()
        self.assertTrue(f.rsv1, "the echo of a large text was not compressed")
        self.assertLess(len(f.payload), len(text) // 4)
        from wstrace_harness import inflate_message
        self.assertEqual(inflate_message(f.payload), text)
        # A compressed message in fragments: RSV1 on the first only.
        data = deflate_message(text)
        c.send_raw(encode_frame(OP_BINARY, data[:10], fin=False, rsv1=True)
                   + encode_frame(OP_CONT, data[10:]))
        self.assertEqual(c.read_message(), (OP_BINARY, text))

    def test_same_rules_as_ws(self):
        c = self.connect()
        c.send_frame(OP_TEXT, b"bad \xff utf8")
        self.assertEqual(c.read_close()[0], 1007)
        c = self.connect()
        c.send_frame(OP_TEXT, b"x", mask=False)
        self.assertEqual(c.read_close()[0], 1002)
        c = self.connect()
        c.send_frame(OP_BINARY, b"\0" * (200 * 1024 + 1))
        self.assertEqual(c.read_close()[0], 1009)


class EchoOff(unittest.TestCase):

    def test_echo_is_off_by_default(self):
        with WstraceServer(threads=1) as srv:
            c = RawClient(srv.port)
            self.addCleanup(c.close)
            self.assertEqual(c.handshake("/echo", expect=None).status, 404)


if __name__ == "__main__":
    unittest.main()
