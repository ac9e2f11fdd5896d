"""Channel streams in one process: one order per channel on every thread,
offsets, history, recovery after a reconnect, History, Published acks,
channel rules (and their reload), the history memory budget and per
connection drops. Real clients (Python websockets); waits are on messages
with deadlines."""

import asyncio
import json
import os
import signal
import tempfile
import unittest

from wstrace_harness import (IO_TIMEOUT, AsyncTestCase, Deadline, RawClient, WaitTimeout,
                             WstraceServer, recv_json, request, stalled_subscriber, wait_until,
                             ws_connect)

RULES = """
[[channel]]
match = "room:*"
history_size = 1000
history_ttl = "10m"

[[channel]]
match = "small:*"
history_size = 10
"""


def config(test, text=RULES):
    fd, path = tempfile.mkstemp(suffix=".toml", prefix="wstrace-streams-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    test.addCleanup(os.unlink, path)
    return path


async def subscribe(ws, channel, since=None, id=None):
    msg = {"type": "Subscribe", "channel": channel}
    if since is not None:
        msg["since"] = since
    if id is not None:
        msg["id"] = id
    await ws.send(json.dumps(msg))
    while True:
        r = await recv_json(ws, what=f"Subscribed to {channel}")
        if r["type"] == "Subscribed":
            assert r["channel"] == channel, r
            assert isinstance(r["epoch"], str) and r["epoch"], r
            assert isinstance(r["offset"], int) and r["offset"] >= 0, r
            return r
        assert r["type"] in ("Message", "Published"), r  # other channels' traffic


async def read_messages(ws, channel, count, what, overall=60.0):
    """The next `count` Messages of `channel` (other frames must not come)."""
    out = []
    d = Deadline(overall, f"{what}: fewer than {count} messages")
    while len(out) < count:
        m = await recv_json(ws, min(IO_TIMEOUT, d.left(f"(got {len(out)})")), what=what)
        assert m["type"] == "Message" and m["channel"] == channel, m
        out.append(m)
    return out


def assert_contiguous(test, msgs, first):
    test.assertEqual([m["offset"] for m in msgs], list(range(first, first + len(msgs))),
                     "offsets must be contiguous, without a gap or a repeat")


class OneOrder(AsyncTestCase):

    async def test_two_publishers_on_different_threads_every_subscriber_one_order(self):
        with WstraceServer(threads=4) as srv:
            subs = [await ws_connect(srv.url()) for _ in range(24)]
            pubs = [await ws_connect(srv.url()) for _ in range(4)]
            # Connections are spread evenly over the 4 threads: find two
            # publishers on different threads.
            rows = srv.connections()
            thread_of = {}
            for ws, row in zip(subs + pubs, rows):
                thread_of[id(ws)] = row["thread"]
            a = pubs[0]
            b = next(p for p in pubs[1:] if thread_of[id(p)] != thread_of[id(a)])
            self.assertGreater(len({thread_of[id(s)] for s in subs}), 1)
            starts = [await subscribe(ws, "chat") for ws in subs]
            self.assertEqual(len({s["epoch"] for s in starts}), 1, "one epoch for the channel")

            n = 300

            async def publish(ws, name):
                for i in range(n):
                    await ws.send(json.dumps({"type": "Message", "channel": "chat",
                                              "content": f"{name}:{i}"}))

            await asyncio.gather(publish(a, "a"), publish(b, "b"))
            seen = []
            for ws, start in zip(subs, starts):
                msgs = await read_messages(ws, "chat", 2 * n, "a subscriber's messages")
                assert_contiguous(self, msgs, start["offset"] + 1)
                seen.append([(m["offset"], m["content"]) for m in msgs])
            # One order: every subscriber saw the same content at each offset.
            for other in seen[1:]:
                self.assertEqual(other, seen[0])
            # Each publisher's own messages in the order it sent them.
            for name in ("a", "b"):
                mine = [c for _, c in seen[0] if c.startswith(name + ":")]
                self.assertEqual(mine, [f"{name}:{i}" for i in range(n)])
            for ws in subs + pubs:
                await ws.close()

    async def test_published_acknowledges_with_the_position(self):
        with WstraceServer() as srv:
            sub = await ws_connect(srv.url())
            pub = await ws_connect(srv.url())
            s = await subscribe(sub, "acks")
            for i in range(5):
                r = await request(pub, {"type": "Message", "channel": "acks", "content": str(i),
                                        "id": f"m{i}"})
                self.assertEqual(r, {"type": "Published", "channel": "acks", "epoch": s["epoch"],
                                     "offset": s["offset"] + 1 + i, "id": f"m{i}"})
            msgs = await read_messages(sub, "acks", 5, "the acknowledged messages")
            assert_contiguous(self, msgs, s["offset"] + 1)
            # Without an id, no reply: the next reply is the Pong.
            await pub.send(json.dumps({"type": "Message", "channel": "acks", "content": "x"}))
            self.assertEqual(await request(pub, {"type": "Ping", "id": 1}),
                             {"type": "Pong", "id": 1})
            await sub.close()
            await pub.close()


class Propagate(AsyncTestCase):
    """propagate = true: delivered Messages carry the publication's trace
    context (its websocket.broadcast span) as "traceparent", in the trace the
    publisher's own traceparent started; other channels' frames do not."""

    async def test_messages_carry_the_publications_traceparent(self):
        path = config(self, '[[channel]]\nmatch = "traced:*"\npropagate = true\n')
        with WstraceServer("--config", path, "--trace-buffer", "1000") as srv:
            sub, pub = await ws_connect(srv.url()), await ws_connect(srv.url())
            for ch in ("traced:1", "plain"):
                await subscribe(sub, ch)
            trace = "4bf92f3577b34da6a3ce929d0e0e4736"
            for ch in ("traced:1", "plain"):
                await pub.send(json.dumps({"type": "Message", "channel": ch, "content": "x",
                                           "traceparent": f"00-{trace}-00f067aa0ba902b7-01"}))
                m = await recv_json(sub)
                self.assertEqual(m["channel"], ch)
                if ch == "plain":
                    self.assertNotIn("traceparent", m)
                    continue
                version, tid, span, flags = m["traceparent"].split("-")
                self.assertEqual((version, tid, flags), ("00", trace, "01"))
                spans = json.loads(srv.admin_get("/api/traces?limit=1000")[1])["spans"]
                broadcast = [s for s in spans if s["name"] == "websocket.broadcast"
                             and s["trace_id"] == trace]
                self.assertEqual([s["span_id"] for s in broadcast], [span])
            await sub.close()
            await pub.close()


class Recovery(AsyncTestCase):

    async def test_reconnect_with_since_gets_every_missed_message_then_live(self):
        with WstraceServer("--config", config(self), threads=2) as srv:
            pub = await ws_connect(srv.url())
            sub = await ws_connect(srv.url())
            start = await subscribe(sub, "room:1")
            epoch = start["epoch"]
            for i in range(10):
                await pub.send(json.dumps({"type": "Message", "channel": "room:1",
                                           "content": f"before:{i}"}))
            got = await read_messages(sub, "room:1", 10, "messages before the disconnect")
            last = got[-1]["offset"]
            await sub.close()
            # 50 while it is away, and more while it recovers.
            for i in range(50):
                await pub.send(json.dumps({"type": "Message", "channel": "room:1",
                                           "content": f"away:{i}"}))
            srv.wait_stats(lambda s: s["history"]["entries"] >= 60, what="60 messages kept")
            stop = asyncio.Event()
            sent_during = 0

            async def keep_publishing():
                nonlocal sent_during
                while not stop.is_set() and sent_during < 2000:
                    await pub.send(json.dumps({"type": "Message", "channel": "room:1",
                                               "content": f"during:{sent_during}"}))
                    sent_during += 1
                    await asyncio.sleep(0)

            task = asyncio.create_task(keep_publishing())
            back = await ws_connect(srv.url())
            r = await subscribe(back, "room:1", since={"epoch": epoch, "offset": last})
            self.assertTrue(r["recovered"], r)
            self.assertEqual(r["epoch"], epoch)
            # Everything after `last`: the 50, then whatever was published
            # during the recovery, then live -- contiguous, none twice.
            recovered = await read_messages(back, "room:1", 50, "the 50 missed messages")
            assert_contiguous(self, recovered, last + 1)
            self.assertEqual([m["content"] for m in recovered], [f"away:{i}" for i in range(50)])
            stop.set()
            await task
            # A marker after the last "during" message: everything up to it.
            r2 = await request(pub, {"type": "Message", "channel": "room:1", "content": "end",
                                     "id": "end"})
            rest = await read_messages(back, "room:1", r2["offset"] - (last + 50),
                                       "what was published during and after the recovery")
            assert_contiguous(self, rest, last + 51)
            self.assertEqual([m["content"] for m in rest],
                             [f"during:{i}" for i in range(sent_during)] + ["end"])
            s = srv.stats()["history"]
            self.assertEqual(s["recoveries"]["recovered"], 1)
            self.assertEqual(s["recovered_messages"], r["offset"] - last)
            await back.close()
            await pub.close()

    async def test_history_trimmed_means_not_recovered(self):
        with WstraceServer("--config", config(self)) as srv:
            pub = await ws_connect(srv.url())
            sub = await ws_connect(srv.url())
            start = await subscribe(sub, "small:1")
            await sub.close()
            for i in range(30):  # the rule keeps 10
                await request(pub, {"type": "Message", "channel": "small:1", "content": str(i),
                                    "id": i})
            back = await ws_connect(srv.url())
            r = await subscribe(back, "small:1",
                                since={"epoch": start["epoch"], "offset": start["offset"]})
            self.assertFalse(r["recovered"], r)
            self.assertEqual(r["offset"], start["offset"] + 30)
            # Nothing of the old messages; live from the new position on.
            await pub.send(json.dumps({"type": "Message", "channel": "small:1", "content": "new"}))
            [m] = await read_messages(back, "small:1", 1, "the next live message")
            self.assertEqual((m["offset"], m["content"]), (r["offset"] + 1, "new"))
            self.assertEqual(srv.stats()["history"]["recoveries"]["not_recovered"], 1)
            # A channel without history cannot recover either (but may: nothing missed).
            plain = await subscribe(back, "plain")
            again = await ws_connect(srv.url())
            r = await subscribe(again, "plain", since={"epoch": plain["epoch"],
                                                       "offset": plain["offset"]})
            self.assertTrue(r["recovered"], "nothing was published: nothing is missing")
            await pub.send(json.dumps({"type": "Message", "channel": "plain", "content": "x"}))
            await read_messages(again, "plain", 1, "plain message")
            late = await ws_connect(srv.url())
            r = await subscribe(late, "plain", since={"epoch": plain["epoch"],
                                                      "offset": plain["offset"]})
            self.assertFalse(r["recovered"], "no history: the one message cannot be recovered")
            for ws in (pub, back, again, late):
                await ws.close()

    async def test_a_restart_is_a_new_epoch(self):
        path = config(self)
        with WstraceServer("--config", path) as srv:
            ws = await ws_connect(srv.url())
            first = await subscribe(ws, "room:1")
            await request(ws, {"type": "Message", "channel": "room:1", "content": "x", "id": 1})
            await ws.close()
        with WstraceServer("--config", path) as srv:
            ws = await ws_connect(srv.url())
            r = await subscribe(ws, "room:1", since={"epoch": first["epoch"], "offset": 1})
            self.assertFalse(r["recovered"], r)
            self.assertNotEqual(r["epoch"], first["epoch"])
            self.assertEqual(r["offset"], 0)
            await ws.close()


class History(AsyncTestCase):

    async def test_history_request(self):
        with WstraceServer("--config", config(self)) as srv:
            ws = await ws_connect(srv.url())
            for i in range(20):
                r = await request(ws, {"type": "Message", "channel": "small:h", "content": f"c{i}",
                                       "id": i})
            epoch = r["epoch"]
            h = await request(ws, {"type": "History", "channel": "small:h", "limit": 3, "id": "h"})
            self.assertEqual(h["type"], "History")
            self.assertEqual((h["epoch"], h["offset"], h["id"]), (epoch, 20, "h"))
            self.assertEqual(h["messages"], [{"offset": o, "content": f"c{o - 1}"}
                                             for o in (18, 19, 20)])
            h = await request(ws, {"type": "History", "channel": "small:h"})
            self.assertEqual([m["offset"] for m in h["messages"]], list(range(11, 21)))
            h = await request(ws, {"type": "History", "channel": "small:h",
                                   "since": {"epoch": epoch, "offset": 15}, "limit": 2})
            self.assertEqual([m["offset"] for m in h["messages"]], [16, 17])
            self.assertTrue(h["recovered"])
            h = await request(ws, {"type": "History", "channel": "small:h",
                                   "since": {"epoch": epoch, "offset": 3}})
            self.assertFalse(h["recovered"], "4..10 are trimmed")
            self.assertEqual(len(h["messages"]), 10)
            h = await request(ws, {"type": "History", "channel": "small:h",
                                   "since": {"epoch": "other", "offset": 3}})
            self.assertEqual(h["messages"], [])
            h = await request(ws, {"type": "History", "channel": "nohistory"})
            self.assertEqual((h["messages"], h["offset"]), ([], 0))
            # History does not subscribe.
            await ws.send(json.dumps({"type": "Message", "channel": "small:h", "content": "z"}))
            self.assertEqual(await request(ws, {"type": "Ping"}), {"type": "Pong"})
            await ws.close()


class Rules(AsyncTestCase):

    def test_a_bad_rule_stops_the_server_naming_the_rule_and_key(self):
        import subprocess
        from wstrace_harness import wstrace_bin
        path = config(self, '[[channel]]\nmatch = "a"\n[[channel]]\nmatch = "b"\n'
                            'history_size = "many"\n')
        r = subprocess.run([wstrace_bin(), "--config", path], capture_output=True, text=True,
                           timeout=20)
        self.assertEqual(r.returncode, 2)
        self.assertIn("channel rule 2", r.stderr)
        self.assertIn("'history_size'", r.stderr)
        path = config(self, '[[channel]]\nmatch = "a"\ncolour = "red"\n')
        r = subprocess.run([wstrace_bin(), "--config", path], capture_output=True, text=True,
                           timeout=20)
        self.assertEqual(r.returncode, 2)
        self.assertIn("'colour' is not a channel rule key", r.stderr)

    async def test_sighup_applies_new_rules(self):
        path = config(self, '[[channel]]\nmatch = "room:*"\nhistory_size = 5\n')
        with WstraceServer("--config", path) as srv:
            ws = await ws_connect(srv.url())
            for i in range(20):
                await request(ws, {"type": "Message", "channel": "room:r", "content": str(i),
                                   "id": i})
            h = await request(ws, {"type": "History", "channel": "room:r"})
            self.assertEqual(len(h["messages"]), 5)
            with open(path, "w") as f:
                f.write('[[channel]]\nmatch = "room:*"\nhistory_size = 50\n')
            srv.signal(signal.SIGHUP)
            line = srv.expect_log(lambda j: j.get("msg") == "configuration reloaded (SIGHUP)",
                                  what="the reload")
            self.assertIn("channel", line["applied"])
            for i in range(20, 40):
                await request(ws, {"type": "Message", "channel": "room:r", "content": str(i),
                                   "id": i})
            h = await request(ws, {"type": "History", "channel": "room:r"})
            self.assertEqual(len(h["messages"]), 25, "5 kept before, 20 after the reload")
            await ws.close()

    async def test_the_history_memory_budget_holds(self):
        args = ("--config", config(self), "--history-memory", "256KiB",
                "--max-content-size", "64KiB")
        with WstraceServer(*args) as srv:
            ws = await ws_connect(srv.url())
            for i in range(200):  # ~2 MiB offered to history
                await request(ws, {"type": "Message", "channel": f"room:{i % 4}",
                                   "content": "x" * 10000, "id": i})
            s = srv.wait_stats(lambda s: s["history"]["evicted_for_memory"] > 0,
                               what="history evicted for memory")["history"]
            self.assertLessEqual(s["bytes"], 256 * 1024)
            self.assertEqual(s["memory_limit"], 256 * 1024)
            self.assertGreater(s["entries"], 0)
            h = await request(ws, {"type": "History", "channel": "room:3"})
            self.assertLess(len(h["messages"]), 50, "the oldest went for memory")
            self.assertEqual(h["messages"][-1]["offset"], 50)
            m = srv.metrics()
            self.assertGreater(m.value("websocket_history_bytes", "websocket_history_bytes_bytes"),
                               0)
            await ws.close()


class Drops(unittest.TestCase):

    def test_a_slow_consumer_s_drops_are_counted_on_its_connection(self):
        args = ("--max-backpressure", "64KiB", "--close-timeout", "60s",
                "--heartbeat-interval", "0", "--client-timeout", "0")
        with WstraceServer(*args) as srv:
            slow = stalled_subscriber(self, srv.port, "feed")
            pub = RawClient(srv.port)
            self.addCleanup(pub.close)
            pub.handshake()
            for i in range(400):
                pub.send_json({"type": "Message", "channel": "feed", "content": "y" * 4000})
            srv.wait_stats(lambda s: s["slow_consumer_disconnects_total"] == 1, what="the 4429")
            [row] = [c for c in srv.connections() if c["state"] != "open"]
            self.assertGreater(row["messages_dropped"], 0)
            self.assertEqual(row["messages_dropped_by_reason"]["slow_consumer"],
                             row["messages_dropped"])
            self.assertEqual(row["messages_dropped_by_reason"]["lost"], 0)
            m = srv.metrics()
            self.assertGreater(m.value("websocket_messages_dropped_total", reason="slow_consumer"),
                               0)
            slow.close()


if __name__ == "__main__":
    unittest.main()
