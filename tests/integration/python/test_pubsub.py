"""Subscribe/publish across event-loop threads with hundreds of real
clients (Python websockets), as docs/PROTOCOL.md describes it."""

import asyncio
import collections
import json
import unittest

from wstrace_harness import (IO_TIMEOUT, AsyncTestCase, Deadline, Positions, RawClient,
                             WaitTimeout, WstraceServer, check_message, check_published,
                             recv_json, request, subscribe, wait_until, ws_connect)

SUBSCRIBERS = 300
CHANNELS = ["room.0", "room.1", "room.2"]
PUBLISHERS = 6
PER_CHANNEL = 20  # messages each publisher sends to each channel


async def connect_many(url, n, **kw):
    # In waves, so the listen backlog never overflows on a busy machine.
    out = []
    for i in range(0, n, 100):
        out += await asyncio.gather(*(ws_connect(url, **kw) for _ in range(min(100, n - i))))
    return out


async def collect(ws, publishers, pos, order, timeout=IO_TIMEOUT, overall=120.0):
    """Reads Messages until every publisher's "done" has arrived on every
    channel this client listens to; returns {(channel, publisher): [seq...]}.
    `publishers` is the set of (channel, publisher) pairs to wait for. Each
    Message must be its channel's next offset for this client (`pos`, a
    Positions); `order[channel]` gets the contents in offset order as this
    client saw them. At most `timeout` between two messages and `overall`
    for all of them."""
    got = {}
    pending = set(publishers)
    d = Deadline(overall, "not every publisher's messages arrived")
    while pending:
        so_far = f"still waiting for the done of {sorted(pending)}; got " \
            f"{ {k: len(v) for k, v in sorted(got.items())} }"
        try:
            m = await recv_json(ws, min(timeout, d.left(so_far)))
        except WaitTimeout as e:
            raise WaitTimeout(f"{e}: {so_far}") from None
        pos.message(m)
        order.setdefault(m["channel"], []).append(m["content"])
        pub, _, seq = m["content"].partition(":")
        key = (m["channel"], pub)
        if seq == "done":
            assert key in pending, f"duplicate or unexpected done {key}"
            pending.discard(key)
        else:
            got.setdefault(key, []).append(int(seq))
    return got


class PubSubTest(AsyncTestCase):

    async def test_fanout_to_hundreds_across_threads_exactly_once_in_order(self):
        with WstraceServer(threads=4) as srv:
            url = srv.url()
            subs = await connect_many(url, SUBSCRIBERS)
            pubs = await connect_many(url, PUBLISHERS)
            try:
                positions = [Positions(f"subscriber {i}") for i in range(SUBSCRIBERS)]
                positions += [Positions(f"publisher {p}") for p in range(PUBLISHERS)]
                replies = await asyncio.gather(*(subscribe(ws, CHANNELS[i % len(CHANNELS)])
                                                 for i, ws in enumerate(subs)))
                # Publishers listen to every channel: a sender gets its own
                # messages when it is subscribed.
                for p, ws in enumerate(pubs):
                    for ch in CHANNELS:
                        replies.append(await subscribe(ws, ch))
                        positions[SUBSCRIBERS + p].subscribed(replies[-1])
                for i, r in enumerate(replies[:SUBSCRIBERS]):
                    positions[i].subscribed(r)
                # Nothing published yet: every channel is at offset 0, and
                # every subscriber on every thread is in the same epoch.
                for ch in CHANNELS:
                    mine = [r for r in replies if r["channel"] == ch]
                    self.assertEqual({r["offset"] for r in mine}, {0}, ch)
                    self.assertEqual(len({r["epoch"] for r in mine}), 1, f"{ch}: {mine[:3]}")
                srv.wait_stats(lambda s: s["connections"]["active"] == SUBSCRIBERS + PUBLISHERS
                               and s["subscriptions"] == SUBSCRIBERS + PUBLISHERS * len(CHANNELS),
                               what="every client connected and subscribed")

                async def publish(p, ws):
                    for seq in range(PER_CHANNEL):
                        for ch in CHANNELS:
                            await ws.send(json.dumps({"type": "Message", "channel": ch,
                                                      "content": f"p{p}:{seq}"}))
                    for ch in CHANNELS:
                        await ws.send(json.dumps({"type": "Message", "channel": ch,
                                                  "content": f"p{p}:done"}))

                expect_sub = {i: {(CHANNELS[i % len(CHANNELS)], f"p{p}") for p in range(PUBLISHERS)}
                              for i in range(SUBSCRIBERS)}
                expect_pub = {(ch, f"p{p}") for ch in CHANNELS for p in range(PUBLISHERS)}
                orders = [{} for _ in positions]
                readers = [collect(ws, expect_sub[i], positions[i], orders[i])
                           for i, ws in enumerate(subs)]
                readers += [collect(ws, expect_pub, positions[SUBSCRIBERS + p],
                                    orders[SUBSCRIBERS + p]) for p, ws in enumerate(pubs)]
                results = await asyncio.gather(*readers, *(publish(p, ws) for p, ws in enumerate(pubs)))
                want = list(range(PER_CHANNEL))
                for i, got in enumerate(results[:SUBSCRIBERS + PUBLISHERS]):
                    keys = expect_sub[i] if i < SUBSCRIBERS else expect_pub
                    self.assertEqual(set(got), keys, f"client {i}")
                    for key, seqs in got.items():
                        self.assertEqual(seqs, want, f"client {i} {key}: not exactly once in order")
                # One order per channel: every client on every thread saw the
                # same content at each offset (offsets 1..N, checked above).
                per_channel = PUBLISHERS * (PER_CHANNEL + 1)
                for ch in CHANNELS:
                    seen = [(i, o[ch]) for i, o in enumerate(orders) if ch in o]
                    self.assertEqual(len(seen), SUBSCRIBERS // len(CHANNELS) + PUBLISHERS, ch)
                    first = seen[0][1]
                    self.assertEqual(len(first), per_channel, ch)
                    for i, o in seen:
                        self.assertEqual(o, first, f"client {i} saw {ch!r} in another order")
                total = PUBLISHERS * len(CHANNELS) * (PER_CHANNEL + 1)
                srv.wait_stats(lambda s: s["messages"]["broadcasted_total"] == total,
                               what=f"broadcasted_total == {total}")
                # Nothing extra is queued for anyone: a Ping's Pong comes next.
                for ws in subs[:10] + pubs:
                    self.assertEqual(await request(ws, {"type": "Ping"}), {"type": "Pong"})
                await asyncio.gather(*(ws.close() for ws in subs + pubs))
                # Nothing left behind in the channel registries.
                srv.wait_stats(lambda s: s["connections"]["active"] == 0
                               and s["subscriptions"] == 0 and s["channels"] == 0,
                               what="registries empty after every client left")
            finally:
                await asyncio.gather(*(ws.close() for ws in subs + pubs))

    async def test_unsubscribe_stops_delivery(self):
        with WstraceServer(threads=2) as srv:
            x = await ws_connect(srv.url())
            control = await ws_connect(srv.url())
            pub = await ws_connect(srv.url())
            try:
                px, pc = Positions("x"), Positions("control")
                px.subscribed(await subscribe(x, "a"))
                px.subscribed(await subscribe(x, "b"))
                pc.subscribed(await subscribe(control, "a", epoch=px.epoch["a"],
                                              offset=px.last["a"]))
                await pub.send(json.dumps({"type": "Message", "channel": "a", "content": "1"}))
                px.message(await recv_json(x), "a", "1")
                pc.message(await recv_json(control), "a", "1")

                r = await request(x, {"type": "Unsubscribe", "channel": "a", "id": 7})
                self.assertEqual(r, {"type": "Unsubscribed", "channel": "a", "id": 7})
                chans = wait_until(lambda: {c["name"]: c["subscribers"] for c in
                                            json.loads(srv.admin_get("/api/channels")[1])["channels"]})
                self.assertEqual(chans, {"a": 1, "b": 1})

                await pub.send(json.dumps({"type": "Message", "channel": "a", "content": "2"}))
                await pub.send(json.dumps({"type": "Message", "channel": "b", "content": "3"}))
                pc.message(await recv_json(control), "a", "2")
                # x gets the later message on b, and nothing on a before it.
                px.message(await recv_json(x), "b", "3")
                self.assertEqual(await request(x, {"type": "Ping"}), {"type": "Pong"})
            finally:
                for ws in (x, control, pub):
                    await ws.close()

    async def test_publish_to_channel_without_subscribers_is_fine(self):
        with WstraceServer(threads=2) as srv:
            ws = await ws_connect(srv.url())
            try:
                await ws.send(json.dumps({"type": "Message", "channel": "nobody.here",
                                          "content": "hello", "id": 1}))
                # No Error: the answer is Published (the channel's first
                # position, though nobody listens), then the Pong.
                check_published(await recv_json(ws, what="the Published answer"),
                                "nobody.here", 1, offset=1)
                self.assertEqual(await request(ws, {"type": "Ping", "id": 2}),
                                 {"type": "Pong", "id": 2})
                # Without an id there is no answer at all: the next message
                # is the Pong.
                await ws.send(json.dumps({"type": "Message", "channel": "nobody.here",
                                          "content": "again"}))
                self.assertEqual(await request(ws, {"type": "Ping", "id": 3}),
                                 {"type": "Pong", "id": 3})
                s = srv.wait_stats(lambda s: s["messages"]["broadcasted_total"] >= 1,
                                   what="the publish counted")
                self.assertEqual(s["errors_total"], 0)
            finally:
                await ws.close()

    async def test_unsubscribed_client_is_removed_on_close(self):
        with WstraceServer(threads=2) as srv:
            a = await ws_connect(srv.url())
            b = await ws_connect(srv.url())
            await subscribe(a, "gone")
            r = await subscribe(b, "gone")
            await a.close()
            srv.wait_stats(lambda s: s["subscriptions"] == 1 and s["connections"]["active"] == 1,
                           what="the closed client's subscription dropped")
            await b.send(json.dumps({"type": "Message", "channel": "gone", "content": "x"}))
            check_message(await recv_json(b), "gone", "x", offset=r["offset"] + 1)
            await b.close()



class ThreadSpread(unittest.TestCase):
    """Connections land on more than one worker thread. Each worker has its
    own listening socket on the shared port and the kernel spreads new
    connections over them (SO_REUSEPORT hashes the address pair): so this
    checks that more than one thread serves clients, not the balance."""

    THREADS = 4
    CLIENTS = 200

    def test_connections_are_spread_over_the_worker_threads(self):
        with WstraceServer(threads=self.THREADS) as srv:
            clients = []
            try:
                for _ in range(self.CLIENTS):
                    c = RawClient(srv.port)
                    clients.append(c)
                    c.handshake()
                # Every one is served, wherever it landed.
                for i, c in enumerate(clients):
                    c.send_json({"type": "Ping", "id": i})
                for i, c in enumerate(clients):
                    self.assertEqual(c.read_json(), {"type": "Pong", "id": i})
                rows = srv.connections()
                self.assertEqual(len(rows), self.CLIENTS)
                per_thread = collections.Counter(r["thread"] for r in rows)
                self.assertTrue(set(per_thread) <= set(range(self.THREADS)), per_thread)
                s = srv.stats()["connections"]
                self.assertEqual(len(s["sockets_per_thread"]), self.THREADS)
                self.assertEqual(s["sockets_per_thread"],
                                 [per_thread.get(t, 0) for t in range(self.THREADS)])
                print(f"\nconnections per thread: {s['sockets_per_thread']}")
                self.assertGreater(len(per_thread), 1,
                                   f"all {self.CLIENTS} connections on one thread: {per_thread}")
            finally:
                for c in clients:
                    c.close()


if __name__ == "__main__":
    unittest.main()
