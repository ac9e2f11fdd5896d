"""permessage-deflate (RFC 7692) with a real client (Python websockets) and
a raw socket that checks RSV1 and inflates the frames itself."""

import asyncio
import base64
import json
import os
import re
import unittest
import zlib

from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from wstrace_harness import (OP_TEXT, AsyncTestCase, Positions, RawClient, WstraceServer,
                             check_message, check_subscribed, raw_subscribe, recv_json, request,
                             subscribe, ws_connect)


def ext_params(header):
    """'permessage-deflate; a; b=10' -> {'a': None, 'b': '10'} (first offer)."""
    assert header, "no Sec-WebSocket-Extensions in the response"
    first = header.split(",")[0]
    parts = [p.strip() for p in first.split(";")]
    assert parts[0] == "permessage-deflate", header
    out = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        out[k.strip()] = v.strip().strip('"') or None
    return out


def big_text(n, seed=0):
    """Compressible but not trivial text of n bytes."""
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"]
    out, size, i = [], 0, seed
    while size < n:
        w = words[(i * 7 + i // 3) % len(words)] + str(i % 97) + " "
        out.append(w)
        size += len(w)
        i += 1
    return "".join(out)[:n]


class WebsocketsClient(AsyncTestCase):

    async def test_negotiated_and_large_messages_arrive_intact_and_compressed(self):
        with WstraceServer("--compression", "on", threads=2) as srv:
            sub = await ws_connect(srv.url(), compression="deflate")
            pub = await ws_connect(srv.url(), compression="deflate")
            plain = await ws_connect(srv.url(), compression=None)
            for ws in (sub, pub):
                self.assertIn("permessage-deflate",
                              ws.response_headers.get("Sec-WebSocket-Extensions", ""))
            self.assertIsNone(plain.response_headers.get("Sec-WebSocket-Extensions"))
            psub, pplain = Positions("compressed subscriber"), Positions("plain subscriber")
            psub.subscribed(await subscribe(sub, "big"))
            pplain.subscribed(await subscribe(plain, "big", epoch=psub.epoch["big"],
                                              offset=psub.last["big"]))

            s0 = srv.stats()
            contents = [big_text(60000, seed=i) for i in range(10)]
            # Incompressible content must survive too.
            contents.append(base64.b64encode(os.urandom(30000)).decode())
            for c in contents:
                await pub.send(json.dumps({"type": "Message", "channel": "big", "content": c}))
            for c in contents:
                psub.message(await recv_json(sub), "big", c)
            # The uncompressed subscriber of the same channel gets the same,
            # at the same offsets.
            for c in contents:
                pplain.message(await recv_json(plain), "big", c)
            s1 = srv.stats()
            payload = sum(len(c) for c in contents[:10])
            sent = s1["bytes"]["sent_total"] - s0["bytes"]["sent_total"]
            received = s1["bytes"]["received_total"] - s0["bytes"]["received_total"]
            # `plain` got about payload+40 KB raw; `sub` must have got far less.
            compressed_part = sent - (payload + 40000)
            self.assertLess(compressed_part, payload / 2,
                            f"bytes sent {sent} for {payload} of text to one compressed "
                            f"and one plain subscriber: not compressed")
            self.assertLess(received, payload / 2 + 40000,
                            f"bytes received {received}: the client's compression ignored")
            for ws in (sub, pub, plain):
                await ws.close()

    async def test_client_no_context_takeover_and_server_max_window_bits(self):
        with WstraceServer("--compression", "on", threads=2) as srv:
            ext = ClientPerMessageDeflateFactory(client_no_context_takeover=True,
                                                 server_max_window_bits=10,
                                                 client_max_window_bits=True)
            ws = await ws_connect(srv.url(), extensions=[ext], compression=None)
            params = ext_params(ws.response_headers.get("Sec-WebSocket-Extensions"))
            self.assertIn("client_no_context_takeover", params)
            self.assertIn("server_max_window_bits", params)
            self.assertLessEqual(int(params["server_max_window_bits"]), 10)
            pos = Positions()
            pos.subscribed(await subscribe(ws, "w"))
            for i in range(5):
                c = big_text(20000, seed=i)
                await ws.send(json.dumps({"type": "Message", "channel": "w", "content": c}))
                pos.message(await recv_json(ws), "w", c)
            self.assertEqual(await request(ws, {"type": "Ping"}), {"type": "Pong"})
            await ws.close()

    async def test_server_no_context_takeover_offer(self):
        with WstraceServer("--compression", "on", threads=2) as srv:
            ext = ClientPerMessageDeflateFactory(server_no_context_takeover=True,
                                                 client_max_window_bits=12)
            ws = await ws_connect(srv.url(), extensions=[ext], compression=None)
            params = ext_params(ws.response_headers.get("Sec-WebSocket-Extensions"))
            self.assertIn("server_no_context_takeover", params)
            pos = Positions()
            pos.subscribed(await subscribe(ws, "n"))
            for i in range(3):
                c = big_text(5000, seed=1)
                await ws.send(json.dumps({"type": "Message", "channel": "n", "content": c}))
                pos.message(await recv_json(ws), "n", c)
            await ws.close()

    async def test_compression_off_declines_the_offer(self):
        with WstraceServer("--compression", "off", threads=1) as srv:
            ws = await ws_connect(srv.url(), compression="deflate")
            self.assertIsNone(ws.response_headers.get("Sec-WebSocket-Extensions"))
            self.assertEqual(await request(ws, {"type": "Ping"}), {"type": "Pong"})
            await ws.close()


async def connect_many(url, n, **kw):
    # In waves, so the listen backlog never overflows on a busy machine.
    out = []
    for i in range(0, n, 100):
        out += await asyncio.gather(*(ws_connect(url, **kw) for _ in range(min(100, n - i))))
    return out


class BoundedCompressionState(AsyncTestCase):
    """Per-connection compression state follows docs/PROTOCOL.md, counted by
    the server in /api/stats "compression": no deflater per connection at
    all (server_no_context_takeover: broadcasts are compressed once), no
    inflater for a client with client_no_context_takeover (one shared per
    thread), one inflater (10-bit window) for a client that keeps its
    context, from its first compressed message until it closes."""

    NO_TAKEOVER = 300
    TAKEOVER = 200

    async def pings(self, clients):
        replies = await asyncio.gather(*(request(ws, {"type": "Ping", "id": i})
                                         for i, ws in enumerate(clients)))
        self.assertEqual(replies, [{"type": "Pong", "id": i} for i in range(len(clients))])

    async def test_inflaters_only_for_clients_keeping_their_context(self):
        with WstraceServer("--compression", "on", threads=2) as srv:
            offer = ClientPerMessageDeflateFactory(client_no_context_takeover=True,
                                                   client_max_window_bits=True,
                                                   compress_settings={"memLevel": 5})
            resetting = await connect_many(srv.url(), self.NO_TAKEOVER, extensions=[offer],
                                           compression=None)
            keeping = []
            try:
                for ws in resetting:
                    params = ext_params(ws.response_headers.get("Sec-WebSocket-Extensions"))
                    self.assertIn("client_no_context_takeover", params)
                # Every client message is compressed (websockets compresses
                # all of them once the extension is on).
                await self.pings(resetting)
                self.assertEqual(srv.stats()["compression"],
                                 {"connections": self.NO_TAKEOVER, "connection_inflaters": 0})

                # The default offer: the client keeps its context.
                keeping = await connect_many(srv.url(), self.TAKEOVER, compression="deflate")
                for ws in keeping:
                    params = ext_params(ws.response_headers.get("Sec-WebSocket-Extensions"))
                    self.assertNotIn("client_no_context_takeover", params)
                    self.assertLessEqual(int(params["client_max_window_bits"]), 10)
                total = self.NO_TAKEOVER + self.TAKEOVER
                # Negotiated but nothing compressed received yet: no inflater.
                self.assertEqual(srv.stats()["compression"],
                                 {"connections": total, "connection_inflaters": 0})
                await self.pings(keeping)
                await self.pings(resetting)
                await self.pings(keeping)  # a second message reuses the inflater
                self.assertEqual(srv.stats()["compression"],
                                 {"connections": total, "connection_inflaters": self.TAKEOVER})

                # Closing gives them back.
                await asyncio.gather(*(ws.close() for ws in keeping))
                srv.wait_stats(lambda s: s["compression"] == {
                    "connections": self.NO_TAKEOVER, "connection_inflaters": 0},
                    what="the inflaters of the closed clients freed")
            finally:
                await asyncio.gather(*(ws.close() for ws in resetting + keeping))
            srv.wait_stats(lambda s: s["compression"] == {"connections": 0,
                                                          "connection_inflaters": 0},
                           what="every compressed connection closed")


class RawRsv1(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = WstraceServer("--compression", "on", threads=2).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        assert rc == 0, f"wstrace exited with {rc}:\n{cls.srv.stderr_text()[-4000:]}"

    def connect(self, offer):
        c = RawClient(self.srv.port)
        self.addCleanup(c.close)
        resp = c.handshake(headers=[("Sec-WebSocket-Extensions", offer)] if offer else None)
        return c, resp

    def publish_to_self(self, c, channel, contents):
        """Subscribes c to channel, publishes contents from c (uncompressed),
        returns the raw frames of the Messages it gets back. The Subscribed
        reply is kept in self.subscribed: the i-th frame's Message must have
        offset self.subscribed["offset"] + 1 + i."""
        self.subscribed = raw_subscribe(c, channel)
        frames = []
        for content in contents:
            c.send_json({"type": "Message", "channel": channel, "content": content})
            f = c.read_frame()
            self.assertEqual(f.opcode, OP_TEXT)
            self.assertTrue(f.fin)
            frames.append(f)
        return frames

    def test_rsv1_set_and_payload_really_deflated(self):
        c, resp = self.connect("permessage-deflate")
        self.assertTrue(c.deflate, resp.headers)
        content = big_text(50000)
        (f,) = self.publish_to_self(c, "r", [content])
        self.assertTrue(f.rsv1, "large message sent without compression")
        self.assertLess(len(f.payload), len(content) / 2)
        wbits = int(ext_params(c.extensions).get("server_max_window_bits") or 15)
        d = zlib.decompressobj(-wbits)
        msg = json.loads(d.decompress(f.payload + b"\x00\x00\xff\xff"))
        check_message(msg, "r", content, offset=self.subscribed["offset"] + 1)

    def test_server_window_and_no_context_takeover_are_honoured(self):
        c, resp = self.connect("permessage-deflate; server_max_window_bits=9; "
                               "server_no_context_takeover; client_max_window_bits")
        params = ext_params(c.extensions)
        self.assertIn("server_no_context_takeover", params)
        self.assertLessEqual(int(params["server_max_window_bits"]), 9)
        # Repeats 600 bytes apart: a 32 KiB window would reach back, a 512-byte
        # one cannot. Identical messages: with context takeover the second
        # would refer to the first.
        block = base64.b64encode(os.urandom(450)).decode()  # 600 chars
        content = block * 20
        frames = self.publish_to_self(c, "win", [content, content, content])
        for i, f in enumerate(frames):
            self.assertTrue(f.rsv1)
            d = zlib.decompressobj(-9)  # fresh each time, window 512 bytes
            msg = json.loads(d.decompress(f.payload + b"\x00\x00\xff\xff"))
            check_message(msg, "win", content, offset=self.subscribed["offset"] + 1 + i)

    def test_context_takeover_when_allowed(self):
        c, resp = self.connect("permessage-deflate; client_max_window_bits")
        params = ext_params(c.extensions)
        content = big_text(20000, seed=3)
        frames = self.publish_to_self(c, "ctx", [content, content])
        # One inflater for the connection works whether or not the server
        # kept its context (it says so with server_no_context_takeover).
        d = zlib.decompressobj(-int(params.get("server_max_window_bits") or 15))
        for i, f in enumerate(frames):
            self.assertTrue(f.rsv1)
            check_message(json.loads(d.decompress(f.payload + b"\x00\x00\xff\xff")), "ctx",
                          content, offset=self.subscribed["offset"] + 1 + i)

    def test_one_broadcast_to_subscribers_with_different_parameters(self):
        offers = ["permessage-deflate; server_max_window_bits=9",
                  "permessage-deflate; server_max_window_bits=12",
                  "permessage-deflate", "permessage-deflate; server_no_context_takeover", None]
        subs, first = [], None
        for offer in offers:
            c, _ = self.connect(offer)
            r = raw_subscribe(c, "mixed", epoch=first and first["epoch"],
                              offset=first and first["offset"])
            first = first or r
            subs.append(c)
        pub, _ = self.connect(None)
        block = base64.b64encode(os.urandom(3000)).decode()
        contents = [block * 8 + str(i) for i in range(3)]
        for content in contents:
            pub.send_json({"type": "Message", "channel": "mixed", "content": content})
        for offer, c in zip(offers, subs):
            wbits = int(ext_params(c.extensions).get("server_max_window_bits") or 15) \
                if c.deflate else None
            d = zlib.decompressobj(-wbits) if wbits else None
            for i, content in enumerate(contents):
                f = c.read_frame()
                self.assertEqual(f.rsv1, c.deflate, offer)
                data = d.decompress(f.payload + b"\x00\x00\xff\xff") if f.rsv1 else f.payload
                # The same bytes for everyone: the same offsets too.
                check_message(json.loads(data), "mixed", content, offset=first["offset"] + 1 + i)

    def test_invalid_offers_are_declined_not_fatal(self):
        for offer in ("permessage-deflate; server_max_window_bits=7",
                      "permessage-deflate; server_max_window_bits=16",
                      "permessage-deflate; client_max_window_bits=99",
                      "permessage-deflate; unknown_param",
                      "permessage-deflate; server_no_context_takeover=1",
                      "x-unknown-extension"):
            with self.subTest(offer=offer):
                c = RawClient(self.srv.port)
                self.addCleanup(c.close)
                c.send_raw(c.request_bytes(headers=[("Sec-WebSocket-Extensions", offer)]))
                resp = c.read_http_response()
                self.assertIn(resp.status, (101, 400), resp.raw)
                if resp.status == 101:
                    self.assertFalse(resp.header("sec-websocket-extensions"), resp.raw)
                    c.send_json({"type": "Ping"})
                    self.assertEqual(c.read_json(), {"type": "Pong"})

    def test_second_offer_used_when_first_is_invalid(self):
        c, resp = self.connect("permessage-deflate; server_max_window_bits=20, "
                               "permessage-deflate; client_max_window_bits")
        self.assertTrue(c.deflate, resp.raw)
        self.assertNotIn("server_max_window_bits=20", c.extensions)

    def test_compressed_client_messages_are_understood(self):
        c, resp = self.connect("permessage-deflate")
        self.assertTrue(c.deflate)
        c.send_text('{"type":"Subscribe","channel":"cc","id":1}', compress=True)
        r = check_subscribed(c.read_json(), "cc", id=1)
        # Fragmented compressed message: RSV1 on the first frame only.
        from wstrace_harness import OP_CONT, deflate_message, encode_frame
        data = deflate_message(json.dumps({"type": "Message", "channel": "cc",
                                           "content": big_text(10000)}).encode())
        third = len(data) // 3
        c.send_raw(encode_frame(OP_TEXT, data[:third], fin=False, rsv1=True)
                   + encode_frame(OP_CONT, data[third:2 * third], fin=False)
                   + encode_frame(OP_CONT, data[2 * third:]))
        check_message(c.read_json(), "cc", big_text(10000), offset=r["offset"] + 1)


if __name__ == "__main__":
    unittest.main()
