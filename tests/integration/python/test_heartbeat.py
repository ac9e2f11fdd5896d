"""Heartbeats (docs/PROTOCOL.md): a Ping every --heartbeat-interval, any frame
from the client is activity, silence for --client-timeout closes with 4408.

Time is measured by the server's own Pings and by a silent control client
being timed out, never by sleeping."""

import asyncio
import unittest

from wstrace_harness import (OP_PING, OP_PONG, OP_TEXT, AsyncTestCase, Deadline, RawClient,
                             WstraceServer, request, ws_connect)

HB = ("--heartbeat-interval", "100ms", "--client-timeout", "400ms")
# Bounds for waits measured in heartbeats: a silent client is closed after
# about 4 Pings (400 ms / 100 ms). 40 Pings or 10 s without the Close means
# it is not coming; either ends the wait.
MAX_PINGS = 40
HB_WAIT = 10.0


def pings_until_close(c):
    """Reads frames without answering; returns (pings seen, close code).
    Fails after MAX_PINGS Pings or HB_WAIT seconds without a Close."""
    return c.pings_until_close(timeout=HB_WAIT, max_pings=MAX_PINGS,
                               hint="is --client-timeout enforced?")


class Heartbeat(AsyncTestCase):

    def test_silent_client_is_closed_with_4408_after_pings(self):
        with WstraceServer(*HB, threads=2) as srv:
            c = RawClient(srv.port)
            self.addCleanup(c.close)
            c.handshake()
            pings, code = pings_until_close(c)
            self.assertEqual(code, 4408)
            self.assertGreaterEqual(pings, 1, "no heartbeat Ping before the timeout")
            c.expect_eof()
            s = srv.wait_stats(lambda s: s["heartbeat_timeouts_total"] >= 1
                               and s["connections"]["active"] == 0,
                               what="heartbeat timeout counted, connection gone")
            self.assertEqual(s["heartbeat_timeouts_total"], 1)
            self.assertEqual(srv.metrics().value("websocket_heartbeat_timeouts_total"), 1)

    async def test_websockets_client_stays_past_the_client_timeout(self):
        with WstraceServer(*HB, threads=2) as srv:
            # Python websockets answers the server's Pings by itself; it
            # sends nothing else (no keepalive of its own).
            good = await ws_connect(srv.url())
            for _ in range(2):
                # A silent client opened after `good` is timed out: more than
                # --client-timeout has passed for `good` too.
                silent = RawClient(srv.port)
                self.addCleanup(silent.close)
                silent.handshake()
                pings, code = await asyncio.to_thread(pings_until_close, silent)
                self.assertEqual(code, 4408)
            self.assertFalse(good.closed)
            self.assertEqual(await request(good, {"type": "Ping", "id": 1}),
                             {"type": "Pong", "id": 1})
            s = srv.stats()
            self.assertEqual(s["heartbeat_timeouts_total"], 2)
            # Its Pongs gave round-trip times.
            self.assertGreaterEqual(srv.metrics().value("websocket_heartbeat_rtt_seconds_count"), 1)
            await good.close()
            self.assertEqual(good.close_code, 1000)

    def test_raw_client_answering_pings_stays(self):
        with WstraceServer(*HB, threads=2) as srv:
            c = RawClient(srv.port)
            self.addCleanup(c.close)
            c.handshake()
            # 8 Pings 100 ms apart: well past the 400 ms timeout.
            d = Deadline(HB_WAIT, "fewer than 8 heartbeat Pings")
            for _ in range(8):
                f = c.read_frame(deadline=d)
                self.assertEqual(f.opcode, OP_PING, f)
                c.send_frame(OP_PONG, f.payload)
            c.send_json({"type": "Ping", "id": "still"})
            self.assertEqual(c.read_json(), {"type": "Pong", "id": "still"})
            self.assertEqual(srv.stats()["heartbeat_timeouts_total"], 0)
            c.send_close(1000)
            self.assertEqual(c.read_close()[0], 1000)

    def test_any_frame_counts_as_activity(self):
        with WstraceServer(*HB, threads=2) as srv:
            c = RawClient(srv.port)
            self.addCleanup(c.close)
            c.handshake()
            # Never a Pong: a text message for each server Ping instead.
            pings = 0
            d = Deadline(HB_WAIT, "fewer than 8 heartbeat Pings")
            while pings < 8:
                f = c.read_frame(deadline=d)
                if f.opcode == OP_PING:
                    pings += 1
                    c.send_json({"type": "Ping", "id": pings})
                else:
                    self.assertEqual(f.opcode, OP_TEXT, f)
            self.assertEqual(srv.stats()["heartbeat_timeouts_total"], 0)
            c.send_close(1000)
            self.assertEqual(c.read_close()[0], 1000)


if __name__ == "__main__":
    unittest.main()
