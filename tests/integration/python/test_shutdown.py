"""SIGTERM/SIGINT (close code 1001 in docs/PROTOCOL.md): stop accepting, Close 1001 to every
client, exit 0 within --shutdown-timeout, even when a client never answers
the Close."""

import asyncio
import json
import signal
import socket
import time
import unittest

from wstrace_harness import (IO_TIMEOUT, AsyncTestCase, ConnectionEnded, Deadline, Positions,
                             RawClient, WstraceServer, raw_subscribe, stalled_subscriber,
                             subscribe, wait_closed_code, ws_connect)


# With --shutdown-timeout 1s the process must be gone this long after the
# signal. A functional bound, not a measurement: generous for an ASan+UBSan
# build on two busy cores, yet far below the 60 s --close-timeout that would
# hold the exit if the shutdown timeout were not enforced.
EXIT_BOUND_S = 6.0


def raw_close_code(c, answer):
    code, _ = c.read_close()
    if answer:
        c.send_close(code)
    c.expect_eof()
    return code


class Shutdown(AsyncTestCase):

    async def shutdown_closes_everyone_with_1001(self, sig):
        with WstraceServer("--shutdown-timeout", "10s", threads=2) as srv:
            clients = [await ws_connect(srv.url()) for _ in range(20)]
            for i, ws in enumerate(clients):
                await subscribe(ws, f"ch{i % 3}")
            raws = []
            for _ in range(3):
                c = RawClient(srv.port)
                self.addCleanup(c.close)
                c.handshake()
                raws.append(c)
            srv.wait_stats(lambda s: s["connections"]["active"] == 23)

            srv.signal(sig)
            codes = await asyncio.gather(
                *(wait_closed_code(ws) for ws in clients),
                *(asyncio.to_thread(raw_close_code, c, True) for c in raws))
            self.assertEqual(codes, [1001] * 23)
            rc = await asyncio.to_thread(srv.wait_exit, IO_TIMEOUT)
            self.assertEqual(rc, 0, srv.stderr_text()[-3000:])
            self.assertIsNotNone(srv.wait_log(lambda j: j.get("msg") == "stopped", 1))

    async def test_sigterm_sends_1001_and_exits_0(self):
        await self.shutdown_closes_everyone_with_1001(signal.SIGTERM)

    async def test_sigint_sends_1001_and_exits_0(self):
        await self.shutdown_closes_everyone_with_1001(signal.SIGINT)

    def test_client_not_answering_close_does_not_hold_the_exit(self):
        # --close-timeout alone would keep the silent client for 60 s; the
        # 1 s --shutdown-timeout must win.
        with WstraceServer("--shutdown-timeout", "1s", "--close-timeout", "60s",
                           threads=2) as srv:
            silent = RawClient(srv.port)
            self.addCleanup(silent.close)
            silent.handshake()
            polite = RawClient(srv.port)
            self.addCleanup(polite.close)
            polite.handshake()
            srv.wait_stats(lambda s: s["connections"]["active"] == 2)
            signalled = time.monotonic()
            srv.signal(signal.SIGTERM)
            self.assertEqual(silent.read_close()[0], 1001)  # and never answered
            self.assertEqual(raw_close_code(polite, True), 1001)

            # While it drains, no new client gets in.
            try:
                late = RawClient(srv.port, timeout=IO_TIMEOUT)
                self.addCleanup(late.close)
                resp = late.handshake(expect=None)
                self.assertNotEqual(resp.status, 101, "upgraded a client while shutting down")
            except (ConnectionRefusedError, ConnectionEnded, ConnectionResetError,
                    BrokenPipeError):
                pass

            # Within the 1 s shutdown timeout (plus slack), far below the 60 s
            # close timeout.
            rc = srv.wait_exit(max(0.0, signalled + EXIT_BOUND_S - time.monotonic()))
            self.assertIsNotNone(rc, f"still running {EXIT_BOUND_S} s after SIGTERM with "
                                     f"--shutdown-timeout 1s: the unanswered Close held it")
            self.assertEqual(rc, 0, srv.stderr_text()[-3000:])
            silent.expect_eof()

    def test_client_with_a_full_socket_does_not_hold_the_exit(self):
        # Its Close 1001 cannot even be written: the outbound queue is full
        # of messages it does not read (under --max-backpressure, so it is
        # not dropped as a slow consumer).
        with WstraceServer("--shutdown-timeout", "1s", "--close-timeout", "60s",
                           "--max-backpressure", "16MiB", threads=2) as srv:
            stalled_subscriber(self, srv.port, "jam")  # never reads
            pub = RawClient(srv.port)
            self.addCleanup(pub.close)
            pub.handshake()
            pos = Positions("the publisher")
            pos.subscribed(raw_subscribe(pub, "jam"))
            def queued():
                conns = json.loads(srv.admin_get("/api/connections")[1])["connections"]
                return max(c["queued_bytes"] for c in conns)

            sent = 0
            fill = Deadline(60, "the stuck client's queue never filled")
            while queued() < 100_000 and sent < 5000 and not fill.expired():  # bounded: 20 MB
                for _ in range(50):
                    pub.send_json({"type": "Message", "channel": "jam", "content": "j" * 4000})
                    # The publisher reads its own copy: it is not stuck.
                    pos.message(pub.read_json(), "jam", "j" * 4000)
                sent += 50
            self.assertGreaterEqual(queued(), 100_000, "the stuck client's queue never filled")
            signalled = time.monotonic()
            srv.signal(signal.SIGTERM)
            self.assertEqual(raw_close_code(pub, True), 1001)
            rc = srv.wait_exit(max(0.0, signalled + EXIT_BOUND_S - time.monotonic()))
            self.assertIsNotNone(rc, f"still running {EXIT_BOUND_S} s after SIGTERM with "
                                     f"--shutdown-timeout 1s: a client with a full socket held it")
            self.assertEqual(rc, 0, srv.stderr_text()[-3000:])

    def test_idle_server_exits_0_and_readyz_turns_503_while_draining(self):
        with WstraceServer("--shutdown-timeout", "5s", "--close-timeout", "60s",
                           threads=1) as srv:
            self.assertEqual(srv.admin_get("/readyz")[0], 200)
            self.assertEqual(srv.admin_get("/healthz")[0], 200)
            # A client that holds the drain open so /readyz can be read.
            silent = RawClient(srv.port)
            self.addCleanup(silent.close)
            silent.handshake()
            srv.signal(signal.SIGTERM)
            self.assertEqual(silent.read_close()[0], 1001)
            try:
                status, _ = srv.admin_get("/readyz", timeout=5)
                self.assertEqual(status, 503)
            except (ConnectionRefusedError, ConnectionResetError, socket.timeout):
                pass  # the admin listener may already be gone
            silent.send_close(1001)
            silent.expect_eof()
            self.assertEqual(srv.wait_exit(IO_TIMEOUT), 0)


if __name__ == "__main__":
    unittest.main()
