"""Channel streams across a cluster, against a real redis-server: Redis
assigns every channel's offsets (with the PUBLISH, atomically) and keeps its
history, so every subscriber on every node sees one order, a client recovers
on any node, and every loss is either caught up from the history or told.

- two publishers on two nodes, subscribers on three: one order, contiguous;
- a client leaves one node and recovers on another (and after kill -9 of
  its node);
- a node cut off from Redis (its link dropped, Redis up for the others)
  catches up from the history when the link is back, or sends a Gap for
  what a channel without history lost;
- Redis restarted without its data: a new epoch, subscribers told (Gap
  reset), old positions not recovered;
- while its link is down a node refuses to publish (Error unavailable).
"""

import asyncio
import json
import os
import tempfile
import unittest

from cluster_support import RedisServer, StallingProxy, node, wait_link
from wstrace_harness import (IO_TIMEOUT, AsyncTestCase, Deadline, recv_json, request, wait_until,
                             ws_connect)

RULES = """
[[channel]]
match = "room:*"
history_size = 500
history_ttl = "10m"
"""


def rules_file(test):
    fd, path = tempfile.mkstemp(suffix=".toml", prefix="wstrace-cluster-streams-")
    with os.fdopen(fd, "w") as f:
        f.write(RULES)
    test.addCleanup(os.unlink, path)
    return path


async def subscribe(ws, channel, since=None):
    msg = {"type": "Subscribe", "channel": channel}
    if since is not None:
        msg["since"] = since
    await ws.send(json.dumps(msg))
    r = await recv_json(ws, what=f"Subscribed to {channel}")
    assert r["type"] == "Subscribed" and r["channel"] == channel, r
    return r


async def next_frames(ws, count, what, overall=60.0):
    """The next `count` frames (Messages and Gaps)."""
    out = []
    d = Deadline(overall, f"{what}: fewer than {count} frames")
    while len(out) < count:
        out.append(await recv_json(ws, min(IO_TIMEOUT, d.left(f"(got {len(out)})")), what=what))
    return out


def contiguous(msgs, first):
    return [m["offset"] for m in msgs] == list(range(first, first + len(msgs)))


class ClusterStreams(AsyncTestCase):

    async def test_two_publishers_on_two_nodes_one_order_everywhere(self):
        with RedisServer() as redis:
            path = rules_file(self)
            nodes = [node(redis.url, f"n{i}", "--config", path).start() for i in range(3)]
            try:
                for n in nodes:
                    wait_link(n)
                subs = [await ws_connect(nodes[i % 3].url()) for i in range(9)]
                starts = [await subscribe(ws, "room:one") for ws in subs]
                self.assertEqual(len({s["epoch"] for s in starts}), 1, "one epoch everywhere")
                pa = await ws_connect(nodes[0].url())
                pb = await ws_connect(nodes[1].url())
                n = 200

                async def publish(ws, name):
                    for i in range(n):
                        await ws.send(json.dumps({"type": "Message", "channel": "room:one",
                                                  "content": f"{name}:{i}"}))

                await asyncio.gather(publish(pa, "a"), publish(pb, "b"))
                seen = []
                for ws, s in zip(subs, starts):
                    msgs = await next_frames(ws, 2 * n, "a subscriber's messages")
                    self.assertTrue(all(m["type"] == "Message" for m in msgs), msgs[:3])
                    self.assertTrue(contiguous(msgs, s["offset"] + 1),
                                    [m["offset"] for m in msgs][:20])
                    seen.append([(m["offset"], m["content"]) for m in msgs])
                for other in seen[1:]:
                    self.assertEqual(other, seen[0], "every node's subscribers: one order")
                for name in ("a", "b"):
                    self.assertEqual([c for _, c in seen[0] if c.startswith(name + ":")],
                                     [f"{name}:{i}" for i in range(n)])
                for ws in subs + [pa, pb]:
                    await ws.close()
            finally:
                for n in nodes:
                    n.stop()

    async def test_recover_on_another_node_and_after_kill9(self):
        with RedisServer() as redis:
            path = rules_file(self)
            a = node(redis.url, "a", "--config", path, expect_clean_exit=False).start()
            b = node(redis.url, "b", "--config", path).start()
            c = node(redis.url, "c", "--config", path).start()
            try:
                for n in (a, b, c):
                    wait_link(n)
                pub = await ws_connect(c.url())
                sub = await ws_connect(a.url())
                s = await subscribe(sub, "room:r")
                for i in range(5):
                    await request(pub, {"type": "Message", "channel": "room:r",
                                        "content": f"x{i}", "id": i})
                got = await next_frames(sub, 5, "before leaving")
                last = got[-1]["offset"]
                await sub.close()
                for i in range(50):
                    r = await request(pub, {"type": "Message", "channel": "room:r",
                                            "content": f"away{i}", "id": 100 + i})
                    self.assertEqual(r["type"], "Published", r)
                # Back on another node: the 50, then live.
                back = await ws_connect(b.url())
                r = await subscribe(back, "room:r", since={"epoch": s["epoch"], "offset": last})
                self.assertTrue(r["recovered"], r)
                self.assertEqual(r["offset"], last + 50)
                msgs = await next_frames(back, 50, "the recovered messages")
                self.assertTrue(contiguous(msgs, last + 1))
                self.assertEqual([m["content"] for m in msgs], [f"away{i}" for i in range(50)])
                await pub.send(json.dumps({"type": "Message", "channel": "room:r",
                                           "content": "live"}))
                [m] = await next_frames(back, 1, "live after the recovery")
                self.assertEqual((m["offset"], m["content"]), (last + 51, "live"))
                pos = m["offset"]
                # Its node dies: the client recovers on another, nothing lost.
                moved = await ws_connect(a.url())
                await subscribe(moved, "room:r")
                a.kill()
                for i in range(30):
                    await request(pub, {"type": "Message", "channel": "room:r",
                                        "content": f"after-kill{i}", "id": 200 + i})
                again = await ws_connect(c.url())
                r = await subscribe(again, "room:r", since={"epoch": s["epoch"], "offset": pos})
                self.assertTrue(r["recovered"], r)
                msgs = await next_frames(again, 30, "recovered after kill -9")
                self.assertTrue(contiguous(msgs, pos + 1))
                self.assertEqual(b.stats()["history"]["recoveries"]["recovered"], 1)
                for ws in (pub, back, again):
                    await ws.close()
            finally:
                for n in (a, b, c):
                    n.stop()

    async def test_a_node_cut_off_from_redis_catches_up_or_reports_the_gap(self):
        with RedisServer() as redis, StallingProxy(redis.port) as proxy:
            path = rules_file(self)
            cut = node(proxy.url, "cut", "--config", path).start()
            other = node(redis.url, "other", "--config", path).start()
            try:
                wait_link(cut)
                wait_link(other)
                sub = await ws_connect(cut.url())
                s_hist = await subscribe(sub, "room:kept")   # has history
                s_none = await subscribe(sub, "plain:lost")  # has none
                pub = await ws_connect(other.url())
                await request(pub, {"type": "Message", "channel": "room:kept", "content": "k0",
                                    "id": 1})
                await request(pub, {"type": "Message", "channel": "plain:lost", "content": "p0",
                                    "id": 2})
                first = await next_frames(sub, 2, "before the cut")
                self.assertEqual({m["content"] for m in first}, {"k0", "p0"})
                # Cut: the node's connections drop and cannot come back yet.
                proxy.hold()
                proxy.drop_all()
                wait_link(cut, up=False)
                for i in range(20):
                    await request(pub, {"type": "Message", "channel": "room:kept",
                                        "content": f"k{i + 1}", "id": 10 + i})
                    await request(pub, {"type": "Message", "channel": "plain:lost",
                                        "content": f"p{i + 1}", "id": 40 + i})
                proxy.release()
                wait_link(cut, timeout=30)
                # room:kept: the 20 from the history, contiguous. plain:lost:
                # a Gap for the 20 it can never get.
                frames = await next_frames(sub, 21, "the catch-up after the link came back")
                kept = [f for f in frames if f["channel"] == "room:kept"]
                lost = [f for f in frames if f["channel"] == "plain:lost"]
                self.assertEqual(len(kept), 20, frames)
                self.assertTrue(all(f["type"] == "Message" for f in kept))
                self.assertTrue(contiguous(kept, s_hist["offset"] + 2))
                self.assertEqual([f["content"] for f in kept], [f"k{i + 1}" for i in range(20)])
                self.assertEqual(lost, [{"type": "Gap", "channel": "plain:lost",
                                         "epoch": s_none["epoch"], "from": s_none["offset"] + 2,
                                         "to": s_none["offset"] + 21}])
                # Counted: on the connection, and as lost positions.
                [row] = cut.connections()
                self.assertEqual(row["messages_dropped_by_reason"]["lost"], 20)
                m = cut.metrics()
                self.assertEqual(m.value("websocket_gaps_total"), 1)
                self.assertEqual(m.value("websocket_messages_dropped_total", reason="lost"), 20)
                self.assertGreaterEqual(m.value("websocket_pubsub_stream_resyncs_total"), 2)
                # And it goes on live.
                await request(pub, {"type": "Message", "channel": "plain:lost", "content": "p21",
                                    "id": 99})
                [m] = await next_frames(sub, 1, "live after the gap")
                self.assertEqual((m["content"], m["offset"]), ("p21", s_none["offset"] + 22))
                await sub.close()
                await pub.close()
            finally:
                cut.stop()
                other.stop()

    async def test_redis_losing_its_data_is_a_new_epoch(self):
        redis = RedisServer().start()
        try:
            path = rules_file(self)
            n1 = node(redis.url, "n1", "--config", path).start()
            try:
                wait_link(n1)
                sub = await ws_connect(n1.url())
                pub = await ws_connect(n1.url())
                s = await subscribe(sub, "room:e")
                for i in range(3):
                    await request(pub, {"type": "Message", "channel": "room:e",
                                        "content": str(i), "id": i})
                await next_frames(sub, 3, "before the restart")
                redis.kill9()
                wait_link(n1, up=False)
                # Down: no publication, no new position.
                r = await request(pub, {"type": "Message", "channel": "room:e", "content": "x",
                                        "id": "down"})
                self.assertEqual((r["type"], r["code"], r["id"]), ("Error", "unavailable", "down"))
                other = await ws_connect(n1.url())
                r = await request(other, {"type": "Subscribe", "channel": "room:new", "id": 7})
                self.assertEqual((r["type"], r["code"]), ("Error", "unavailable"))
                redis.start()  # empty: the streams are gone
                wait_link(n1, timeout=30)
                [gap] = await next_frames(sub, 1, "the reset notice")
                self.assertEqual(gap["type"], "Gap", gap)
                self.assertTrue(gap["reset"])
                self.assertEqual(gap["previous_epoch"], s["epoch"])
                self.assertNotEqual(gap["epoch"], s["epoch"])
                r = await request(pub, {"type": "Message", "channel": "room:e", "content": "new",
                                        "id": "new"})
                self.assertEqual((r["type"], r["epoch"], r["offset"]), ("Published", gap["epoch"], 1))
                [m] = await next_frames(sub, 1, "the first message of the new epoch")
                self.assertEqual((m["content"], m["offset"]), ("new", 1))
                late = await ws_connect(n1.url())
                r = await subscribe(late, "room:e", since={"epoch": s["epoch"], "offset": 3})
                self.assertFalse(r["recovered"], r)
                self.assertEqual(r["epoch"], gap["epoch"])
                for ws in (sub, pub, other, late):
                    await ws.close()
            finally:
                n1.stop()
        finally:
            redis.stop()

    async def test_history_lives_in_redis_with_the_positions(self):
        with RedisServer() as redis:
            path = rules_file(self)
            n1 = node(redis.url, "n1", "--config", path).start()
            n2 = node(redis.url, "n2", "--config", path).start()
            try:
                wait_link(n1)
                wait_link(n2)
                ws = await ws_connect(n1.url())
                for i in range(10):
                    await request(ws, {"type": "Message", "channel": "room:h",
                                       "content": f"h{i}", "id": i})
                meta = redis.command("HGETALL", "wstrace:{room:h}:meta")
                self.assertEqual(dict(zip(meta[::2], meta[1::2]))["o"], "10")
                self.assertEqual(redis.command("XLEN", "wstrace:{room:h}:hist"), 10)
                # Any node answers History from Redis.
                other = await ws_connect(n2.url())
                h = await request(other, {"type": "History", "channel": "room:h", "limit": 4})
                self.assertEqual([m["content"] for m in h["messages"]],
                                 ["h6", "h7", "h8", "h9"])
                self.assertEqual(h["offset"], 10)
                await ws.close()
                await other.close()
            finally:
                n1.stop()
                n2.stop()


if __name__ == "__main__":
    unittest.main()
