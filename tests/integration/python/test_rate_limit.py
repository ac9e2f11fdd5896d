"""--rate-limit N is a token bucket per connection: N messages per second,
--rate-burst (default N) saved up, any N honoured (large ones too). What is
over the limit gets Error rate_limited, is dropped and counted; the
connection stays open.

No test waits for the bucket to refill by sleeping: the bounds are checked
against the time the test itself measured (an upper bound on what the
server could have refilled), so they hold however slow the machine is."""

import threading
import time
import unittest

from wstrace_harness import OP_TEXT, RawClient, WstraceServer, encode_frame, wait_until

PING = encode_frame(OP_TEXT, b'{"type":"Ping"}')


def replies(c, n, timeout=30):
    """Reads n replies; returns (pongs, rate_limited errors)."""
    pongs = limited = 0
    for _ in range(n):
        m = c.read_json(timeout=timeout)
        if m["type"] == "Pong":
            pongs += 1
        else:
            assert m["type"] == "Error" and m["code"] == "rate_limited", m
            limited += 1
    return pongs, limited


class RateLimit(unittest.TestCase):

    def test_small_rate_allows_the_burst_then_refuses(self):
        with WstraceServer("--rate-limit", "5") as srv:
            c = RawClient(srv.port)
            self.addCleanup(c.close)
            c.handshake()
            t0 = time.monotonic()
            c.send_raw(PING * 40)
            pongs, limited = replies(c, 40)
            elapsed = time.monotonic() - t0
            # The bucket starts full (5) and refills 5 per second.
            self.assertGreaterEqual(pongs, 5)
            self.assertLessEqual(pongs, 5 + int(5 * elapsed) + 1,
                                 f"{pongs} accepted in {elapsed:.2f} s at 5/s with a burst of 5")
            self.assertEqual(pongs + limited, 40)
            # Still open, and the drops are counted.
            m = srv.metrics()
            self.assertEqual(m.value("websocket_messages_dropped_total", reason="rate_limited"),
                             limited)
            self.assertEqual(srv.stats()["connections"]["active"], 1)

    def test_the_burst_can_be_smaller_than_the_rate(self):
        with WstraceServer("--rate-limit", "1000", "--rate-burst", "3") as srv:
            c = RawClient(srv.port)
            self.addCleanup(c.close)
            c.handshake()
            t0 = time.monotonic()
            c.send_raw(PING * 10)
            pongs, limited = replies(c, 10)
            elapsed = time.monotonic() - t0
            self.assertGreaterEqual(pongs, 3)
            self.assertLessEqual(pongs, 3 + int(1000 * elapsed) + 1)
            if elapsed < 0.002:  # too fast for a refill: exactly the burst
                self.assertEqual(pongs, 3)

    def test_rates_above_65535_are_honoured(self):
        n, sent = 70000, 100000
        with WstraceServer("--rate-limit", str(n), "--max-backpressure", "64MiB") as srv:
            c = RawClient(srv.port)
            self.addCleanup(c.close)
            c.handshake()
            # Drain the replies in the background; count from the metrics.
            stop = threading.Event()

            def drain():
                c.sock.settimeout(1)
                while not stop.is_set():
                    try:
                        if not c.sock.recv(1 << 20):
                            return
                    except OSError:
                        continue

            t = threading.Thread(target=drain, daemon=True)
            t.start()
            self.addCleanup(stop.set)
            t0 = time.monotonic()
            c.send_raw(PING * sent)

            def counted():
                m = srv.metrics()
                pongs = m.value("websocket_messages_sent_total", type="Pong") or 0
                limited = m.value("websocket_messages_dropped_total", reason="rate_limited") or 0
                return (pongs, limited) if pongs + limited >= sent else None

            pongs, limited = wait_until(counted, timeout=60, what=f"{sent} Pings handled")
            elapsed = time.monotonic() - t0
            self.assertEqual(pongs + limited, sent)
            self.assertGreaterEqual(pongs, n, "the burst (the full bucket) must be allowed")
            # Never more than the burst plus what the rate refilled while
            # the test watched (a 16-bit counter would never have limited).
            self.assertLessEqual(pongs, n + n * elapsed + 1,
                                 f"{pongs} of {sent} accepted in {elapsed:.2f} s at {n}/s")
            print(f"\n  {pongs} accepted, {limited} limited in {elapsed:.2f} s", end=" ")


if __name__ == "__main__":
    unittest.main()
