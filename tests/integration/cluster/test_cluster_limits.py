"""What a node holds for Redis is bounded (docs/CLUSTER.md, "When Redis goes
away"): publications queued for Redis or awaiting its reply are capped at
100,000 and at 64 MiB (their envelopes: content, channel, header); beyond,
they are dropped and counted (queue_full), and memory stays bounded.
"""

import asyncio
import os
import signal
import unittest

from cluster_support import (RedisServer, close_all, metric, node, publish, read_until,
                             subscribe_all, wait_link, wait_redis_matches, wait_until, ws_connect)
from wstrace_harness import OP_TEXT, AsyncTestCase, RawClient, deflate_message, encode_frame

MiB = 1 << 20
BUDGET = 64 * MiB        # BridgeOptions::max_pending_bytes
CONTENT = 4 * MiB        # each publication's content
BURST = 48               # publications per stall: 192 MiB, three times the budget
# Peak RSS over the baseline: the budget plus room for what is being read,
# parsed and encoded meanwhile (a few publications per thread) and allocator
# slack. Under AddressSanitizer, whose realloc copies (glibc's moves pages),
# hiredis' output buffer exists twice while it grows, and freed blocks wait
# in a (small, see below) quarantine: one more budget. Without the byte
# bound the peak grows with the burst (three times the budget).
RSS_SLACK = 96 * MiB


def proc_status(pid, key):
    """A /proc/PID/status size field (VmRSS, VmHWM), in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def sanitized(pid):
    """Whether the process runs with AddressSanitizer (GCC links libasan)."""
    with open(f"/proc/{pid}/maps") as f:
        return any("libasan" in line for line in f)


def dropped(srv, reason):
    return metric(srv, "websocket_pubsub_dropped_total", reason=reason)


def accounted(srv):
    """Publications that have left the bridge: published or dropped."""
    return metric(srv, "websocket_pubsub_published_total") + sum(
        dropped(srv, r) for r in ("link_down", "queue_full", "publish_error"))


class ClusterLimitsTest(AsyncTestCase):

    # Regression (bridge, memory) — was: the publish path toward Redis was
    # bounded by a number of publications only (100,000): with Redis stalled
    # and 4 MiB messages that is ~400 GB, so the node grew by every byte
    # published (hiredis' output buffer) until the health check gave up on
    # Redis, and queue_full never happened.
    async def test_publications_for_a_stalled_redis_are_bounded_in_bytes(self):
        # A small AddressSanitizer quarantine (sanitizer builds), so freed
        # buffers do not count as memory held; other builds ignore it.
        asan = os.environ.get("ASAN_OPTIONS", "")
        env = {"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=16"}
        with RedisServer() as redis:
            a = node(redis.url, "a", "--max-content-size", "5MiB", "--max-message-size", "6MiB",
                     "--compression", "on", env=env).start()
            b = node(redis.url, "b").start()
            clients = []
            raw = None
            try:
                wait_link(a)
                wait_link(b)
                sub = await ws_connect(b.url())
                pub = await ws_connect(a.url())
                clients = [sub, pub]
                await subscribe_all(sub, ["after"])
                wait_redis_matches(redis, [(a, set()), (b, {"after"})])

                # Publications of 4 MiB on a channel nobody subscribes to,
                # sent compressed (a few KiB each on the wire), one at a
                # time: a Ping after each, whose Pong says a has handed the
                # publication to its bridge (a worker hands over what it read
                # in one loop iteration at once: the bridge's bound is not
                # the worker's).
                raw = RawClient(a.port)
                raw.handshake(headers=[("Sec-WebSocket-Extensions",
                                        "permessage-deflate; client_no_context_takeover")])
                self.assertTrue(raw.deflate, raw.extensions)
                message = b'{"type":"Message","channel":"bulk","content":"%s"}' % (b"x" * CONTENT)
                frame = encode_frame(OP_TEXT, deflate_message(message), rsv1=True)
                pings = [0]

                def publish_big():
                    pings[0] += 1
                    raw.send_raw(frame + encode_frame(OP_TEXT, '{"type":"Ping","id":%d}' % pings[0]))
                    reply = raw.read_json()
                    self.assertEqual(reply, {"type": "Pong", "id": pings[0]})

                # One while Redis answers: it goes through (and warms up
                # the buffers a big message needs).
                publish_big()
                wait_until(lambda: metric(a, "websocket_pubsub_published_total") == 1,
                           what="a 4 MiB publication through Redis")
                baseline = proc_status(a.pid, "VmRSS")
                sent = 1

                # Redis stops answering (SIGSTOP, so its connections stay
                # open) while a's client publishes three times the budget.
                # Nothing is answered: each publication ends up dropped,
                # queue_full once the budget is used, link_down once the
                # health check has given up on Redis. On a machine too slow
                # to read the budget's worth before the health check gives
                # up (~3 s), nothing is queue_full: try again.
                peaks = []
                for _ in range(3):
                    os.kill(redis.proc.pid, signal.SIGSTOP)
                    try:
                        for _ in range(BURST):
                            publish_big()
                            sent += 1
                        # Handed to the bridge already (each got its Pong):
                        # the health check (3 s) gives up on the stopped Redis
                        # and drops what is left.
                        wait_until(lambda: accounted(a) == sent, timeout=45,
                                   what=f"{sent} publications published or dropped")
                        peaks.append(proc_status(a.pid, "VmHWM"))
                    finally:
                        os.kill(redis.proc.pid, signal.SIGCONT)
                    wait_link(a, True, timeout=30)
                    if dropped(a, "queue_full") > 0:
                        break

                counts = {r: dropped(a, r) for r in ("queue_full", "link_down", "publish_error")}
                self.assertGreater(counts["queue_full"], 0,
                                   f"nothing dropped as queue_full: {counts}")
                self.assertEqual(counts["publish_error"], 0, counts)
                self.assertTrue(a.running())
                growth = max(peaks) - baseline
                bound = BUDGET + RSS_SLACK + (BUDGET if sanitized(a.pid) else 0)
                self.assertLess(growth, bound,
                                f"peak RSS {max(peaks) / MiB:.0f} MiB, "
                                f"{growth / MiB:.0f} MiB over the {baseline / MiB:.0f} MiB "
                                f"before the burst (bound {bound / MiB:.0f} MiB)")

                # Back to normal: nothing is left reserved, a 4 MiB
                # publication goes through again and messages cross nodes.
                # b was cut off by the stall too (its health check gives up
                # on Redis as a's does): wait until it has resubscribed, or
                # Redis Pub/Sub, which keeps nothing, would lose the message.
                wait_link(b, True, timeout=30)
                wait_redis_matches(redis, [(a, set()), (b, {"after"})])
                published = metric(a, "websocket_pubsub_published_total")
                publish_big()
                wait_until(lambda: metric(a, "websocket_pubsub_published_total") == published + 1,
                           what="a 4 MiB publication through Redis after the stall")
                await publish(pub, "after", "crossed")
                self.assertEqual(await read_until(sub, {("after", "crossed")}, "b"),
                                 [("after", "crossed")])
            finally:
                if raw is not None:
                    raw.close()
                await close_all(clients)
                self.assertEqual([a.stop(), b.stop()], [0, 0])


if __name__ == "__main__":
    unittest.main()
