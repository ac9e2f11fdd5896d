"""Three wstrace nodes behind one real redis-server (docs/CLUSTER.md):
exactly-once delivery to every subscriber on every node with per-publisher
order, at contiguous offsets in one order per channel for everyone, Redis
subscriptions that follow local interest, and a subscribe/unsubscribe storm
that ends with Redis matching local interest.
"""

import asyncio
import json
import random
import unittest

from cluster_support import (IO_TIMEOUT, RedisServer, close_all, cluster_stats, connect_many,
                             gaps, local_interest, metric, next_message, node, positions, publish,
                             read_until, recv_json, redis_channel, subscribe_all, unsubscribe_all,
                             wait_link, wait_redis_matches, wait_until, ws_connect)
from wstrace_harness import AsyncTestCase, check_subscribed

CHANNELS = ["room.0", "room.1", "room.2"]
SUBSCRIBERS_PER_NODE = 30
PUBLISHERS_PER_NODE = 2
PER_CHANNEL = 25  # messages each publisher sends to each channel


class Cluster:
    """redis-server + three nodes, started and stopped together."""

    def __init__(self, n=3, threads=2):
        self.redis = RedisServer()
        self.nodes = []
        self.n = n
        self.threads = threads

    def __enter__(self):
        self.redis.start()
        try:
            for i in range(self.n):
                self.nodes.append(node(self.redis.url, f"n{i + 1}", threads=self.threads).start())
            for srv in self.nodes:
                wait_link(srv)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        rcs = [srv.stop() for srv in self.nodes]
        self.redis.__exit__()
        if exc_type is None:
            for srv, rc in zip(self.nodes, rcs):
                if rc != 0:
                    raise AssertionError(f"{srv.args} exited with {rc}:\n"
                                         + srv.stderr_text()[-4000:])
        return False


async def collect_sequences(ws, expected, what, order=None):
    """Reads until every (channel, publisher) in `expected` sent "done";
    returns {(channel, publisher): [seq, ...]} in arrival order. Each
    Message must be its channel's next offset for this client; order[channel]
    (when given) gets {offset: content}."""
    got = {}
    pending = set(expected)
    while pending:
        m = await next_message(ws, IO_TIMEOUT, what)
        if order is not None:
            order.setdefault(m["channel"], {})[m["offset"]] = m["content"]
        pub, _, seq = m["content"].partition(":")
        key = (m["channel"], pub)
        assert key in expected, f"{what}: unexpected message {m}"
        if seq == "done":
            assert key in pending, f"{what}: duplicate done {key}"
            pending.discard(key)
        else:
            got.setdefault(key, []).append(int(seq))
    return got


async def expect_only_fences(ws, fences, what):
    """Reads until every fence in `fences` (set of (channel, content)) has
    arrived; anything else in between is a duplicate delivery."""
    seen = await read_until(ws, fences, what)
    extra = [k for k in seen if k not in fences]
    assert not extra, f"{what}: delivered more than once: {extra[:10]}"
    assert len(seen) == len(fences), f"{what}: fence delivered twice: {seen}"


class ClusterDeliveryTest(AsyncTestCase):

    async def test_exactly_once_in_order_to_every_subscriber_on_every_node(self):
        with Cluster() as cl:
            nodes = cl.nodes
            subs, pubs = [], []  # (node index, ws, channels)
            for ni, srv in enumerate(nodes):
                for i, ws in enumerate(await connect_many(srv.url(), SUBSCRIBERS_PER_NODE)):
                    # Most listen to one channel, every fifth to two.
                    chans = [CHANNELS[i % 3]] + ([CHANNELS[(i + 1) % 3]] if i % 5 == 0 else [])
                    subs.append((ni, ws, chans))
                for ws in await connect_many(srv.url(), PUBLISHERS_PER_NODE):
                    # Publishers listen to everything: a sender gets its own
                    # messages once when it is subscribed.
                    pubs.append((ni, ws, list(CHANNELS)))
            everyone = subs + pubs
            try:
                replies = await asyncio.gather(*(subscribe_all(ws, ch) for _, ws, ch in everyone))
                # Nothing published yet: every channel at offset 0, one epoch
                # for it on every node (Redis keeps the position).
                for ch in CHANNELS:
                    mine = [r[ch] for r in replies if ch in r]
                    self.assertEqual({r["offset"] for r in mine}, {0}, ch)
                    self.assertEqual(len({r["epoch"] for r in mine}), 1, f"{ch}: {mine[:3]}")
                wait_redis_matches(cl.redis, [(srv, set(CHANNELS)) for srv in nodes])
                for srv in nodes:
                    self.assertEqual(local_interest(srv), set(CHANNELS))

                names = [f"n{ni + 1}p{k}" for k, (ni, _, _) in enumerate(pubs)]

                async def run_publisher(k, ws):
                    for seq in range(PER_CHANNEL):
                        for ch in CHANNELS:
                            await publish(ws, ch, f"{names[k]}:{seq}")
                    for ch in CHANNELS:
                        await publish(ws, ch, f"{names[k]}:done")

                expected = [{(ch, p) for ch in chans for p in names} for _, _, chans in everyone]
                orders = [{} for _ in everyone]
                results = await asyncio.gather(
                    *(collect_sequences(ws, expected[i], f"client {i} on n{ni + 1}", orders[i])
                      for i, (ni, ws, _) in enumerate(everyone)),
                    *(run_publisher(k, ws) for k, (_, ws, _) in enumerate(pubs)))
                want = list(range(PER_CHANNEL))
                for i, got in enumerate(results[:len(everyone)]):
                    for key in expected[i]:
                        self.assertEqual(got.get(key), want,
                                         f"client {i} on n{everyone[i][0] + 1}, {key}: not exactly "
                                         "once in order")
                # One order per channel over the cluster: every client on
                # every node has the same content at each offset, 1..N.
                per_channel = len(names) * (PER_CHANNEL + 1)
                for ch in CHANNELS:
                    seen = [(i, o[ch]) for i, o in enumerate(orders) if ch in o]
                    self.assertEqual(sorted(seen[0][1]), list(range(1, per_channel + 1)), ch)
                    for i, o in seen:
                        self.assertEqual(o, seen[0][1], f"client {i} on n{everyone[i][0] + 1} "
                                                        f"saw {ch!r} in another order")

                # Fences: each publisher publishes one more message per channel
                # only now that every client has everything. On every node the
                # fences of the other nodes come through Redis after anything
                # Redis still had for it (including a node's own echoes), so a
                # duplicate would show up before them.
                fences = {(ch, f"{p}:fence") for ch in CHANNELS for p in names}
                await asyncio.gather(
                    *(expect_only_fences(ws, {f for f in fences if f[0] in chans},
                                         f"client {i} on n{ni + 1}")
                      for i, (ni, ws, chans) in enumerate(everyone)),
                    *(publish(ws, ch, f"{names[k]}:fence")
                      for k, (_, ws, _) in enumerate(pubs) for ch in CHANNELS))

                for _, ws, _ in everyone:
                    self.assertEqual(gaps(ws), [], "a Gap without any fault")

                # Counters: every publication went through Redis once, and
                # each node received every publication back from Redis (its
                # own too: a node delivers its own publications when they
                # come back); the lag is measured on the others'.
                per_node_pubs = PUBLISHERS_PER_NODE * len(CHANNELS) * (PER_CHANNEL + 2)
                total = per_node_pubs * len(nodes)
                for srv in nodes:
                    c = cluster_stats(srv)
                    self.assertEqual(c["published_total"], per_node_pubs, c)
                    self.assertEqual(c["received_total"], total, c)
                    self.assertEqual(c["dropped_total"], 0, c)
                    self.assertTrue(c["link_up"])
                    m = srv.metrics()
                    self.assertEqual(m.value("websocket_pubsub_published_total"), per_node_pubs)
                    self.assertEqual(m.value("websocket_pubsub_received_total"), total)
                    self.assertEqual(m.value("websocket_pubsub_dropped_total"), 0)
                    self.assertEqual(m.value("websocket_pubsub_publish_errors_total"), 0)
                    self.assertEqual(m.value("websocket_pubsub_link_up"), 1)
                    self.assertEqual(m.value("websocket_pubsub_subscriptions"), len(CHANNELS))
                    # Lag: publish on one node -> received on another.
                    self.assertEqual(m.value("websocket_pubsub_lag_seconds_count"),
                                     total - per_node_pubs)
                    self.assertGreater(m.value("websocket_pubsub_lag_seconds_sum"), 0)
                    self.assertEqual(m.value("websocket_pubsub_lag_seconds_bucket", le="+Inf"),
                                     total - per_node_pubs)
            finally:
                await close_all([ws for _, ws, _ in everyone])

    async def test_redis_subscriptions_follow_local_interest(self):
        with Cluster() as cl:
            a, b, c = cl.nodes
            # Several subscribers of only.a on node a (over its two threads),
            # shared on a and b, nothing on c.
            a_clients = await connect_many(a.url(), 6)
            b_clients = await connect_many(b.url(), 2)
            c_pub = await ws_connect(c.url())
            try:
                await asyncio.gather(*(subscribe_all(ws, ["only.a", "shared"]) for ws in a_clients))
                await asyncio.gather(*(subscribe_all(ws, ["shared"]) for ws in b_clients))
                wait_redis_matches(cl.redis,
                                   [(a, {"only.a", "shared"}), (b, {"shared"}), (c, set())])
                self.assertEqual(cl.redis.numsub("only.a", "shared", "nobody"),
                                 {"only.a": 1, "shared": 2, "nobody": 0})
                self.assertEqual(cluster_stats(c)["redis_subscriptions"], 0)
                self.assertEqual(metric(c, "websocket_pubsub_subscriptions"), 0)

                # c is subscribed to nothing yet its publications reach a and b.
                await publish(c_pub, "only.a", "from-c-1")
                await publish(c_pub, "shared", "from-c-2")
                await asyncio.gather(
                    *(read_until(ws, {("only.a", "from-c-1"), ("shared", "from-c-2")}, "a")
                      for ws in a_clients),
                    *(read_until(ws, {("shared", "from-c-2")}, "b") for ws in b_clients))

                # Five of the six subscribers of only.a leave (unsubscribe or
                # close): a still has interest, so Redis keeps it.
                await asyncio.gather(*(unsubscribe_all(ws, ["only.a"]) for ws in a_clients[1:3]))
                await close_all(a_clients[3:])
                a.wait_stats(lambda s: s["connections"]["active"] == 3 and s["subscriptions"] == 4,
                             what="a's leavers gone")
                wait_redis_matches(cl.redis,
                                   [(a, {"only.a", "shared"}), (b, {"shared"}), (c, set())])
                await publish(c_pub, "only.a", "still-there")
                self.assertEqual(await read_until(a_clients[0], {("only.a", "still-there")}, "a0"),
                                 [("only.a", "still-there")])

                # The last one leaves by Unsubscribe: a unsubscribes in Redis.
                await unsubscribe_all(a_clients[0], ["only.a"])
                wait_redis_matches(cl.redis, [(a, {"shared"}), (b, {"shared"}), (c, set())])
                self.assertEqual(local_interest(a), {"shared"})

                # b's subscribers of shared leave by closing their connections.
                await close_all(b_clients)
                wait_redis_matches(cl.redis, [(a, {"shared"}), (b, set()), (c, set())])

                # Back again: a subscribes in Redis again and receives.
                await subscribe_all(a_clients[1], ["only.a"])
                wait_redis_matches(cl.redis, [(a, {"only.a", "shared"}), (b, set()), (c, set())])
                await publish(c_pub, "only.a", "again")
                self.assertEqual(await read_until(a_clients[1], {("only.a", "again")}, "a1"),
                                 [("only.a", "again")])
                # Nothing for a client that left the channel: the next message
                # a0 gets is on shared, not the only.a one published before it.
                await publish(c_pub, "shared", "marker")
                seen = await read_until(a_clients[0], {("shared", "marker")}, "a0")
                self.assertEqual(seen, [("shared", "marker")])
            finally:
                await close_all(a_clients + b_clients + [c_pub])

    async def test_subscribe_unsubscribe_storm_ends_with_redis_matching_interest(self):
        rng = random.Random(5)
        storm_channels = [f"storm.{i}" for i in range(24)]
        with Cluster() as cl:
            a, b, c = cl.nodes
            stormed = [a, b]
            clients = {}  # srv index -> list of ws
            final = {}    # srv index -> list of sets (channels each client ends on)

            async def storm(si, srv):
                wss = await connect_many(srv.url(), 150)
                clients[si] = wss
                model = [set() for _ in wss]

                async def client(k, ws):
                    # Three bursts per client, pipelined: join a few channels,
                    # leave some, join others; replies read at the end.
                    ops = []
                    for _ in range(3):
                        for ch in rng.sample(storm_channels, 3):
                            ops.append(("Subscribe", ch))
                            model[k].add(ch)
                        for ch in rng.sample(sorted(model[k]), min(2, len(model[k]))):
                            ops.append(("Unsubscribe", ch))
                            model[k].discard(ch)
                    for t, ch in ops:
                        await ws.send(json.dumps({"type": t, "channel": ch}))
                    # One reply per request; a Subscribed may come after the
                    # replies to later requests (its position comes from
                    # Redis), so they are matched as a multiset.
                    want = sorted((t + "d", ch) for t, ch in ops)
                    got = []
                    subscribed = []
                    for _ in ops:
                        r = await recv_json(ws, what=f"storm client {k}: a reply of {want} "
                                                     f"(got {sorted(got)})")
                        if r.get("type") == "Subscribed":
                            subscribed.append(check_subscribed(r, r.get("channel")))
                        else:
                            self.assertEqual(set(r), {"type", "channel"},
                                             f"storm client {k} (link up), requests {ops}: "
                                             f"answered {r}")
                        got.append((r.get("type"), r.get("channel")))
                    self.assertEqual(sorted(got), want, f"storm client {k}")
                    # Nothing is published during the storm: every Subscribed
                    # of a channel it ends on gives the same position.
                    for r in subscribed:
                        if r["channel"] in model[k]:
                            positions(ws).subscribed(r)

                async def transients():
                    # Meanwhile 100 more join two channels each and leave at once.
                    tws = await connect_many(srv.url(), 100)
                    await asyncio.gather(*(subscribe_all(ws, rng.sample(storm_channels, 2))
                                           for ws in tws))
                    await close_all(tws)

                await asyncio.gather(transients(), *(client(k, ws) for k, ws in enumerate(wss)))
                # A third of them leave altogether, abruptly.
                leavers = list(range(0, len(wss), 3))
                await close_all([wss[k] for k in leavers])
                for k in leavers:
                    model[k] = set()
                final[si] = model

            async def flapper(srv, ch, rounds):
                # One client alone on its channel, subscribing and
                # unsubscribing as fast as the replies come back: the node's
                # interest flips each time, SUBSCRIBE and UNSUBSCRIBE to Redis
                # overlap with each other's replies. It ends subscribed.
                ws = await ws_connect(srv.url())
                for _ in range(rounds):
                    await subscribe_all(ws, [ch])
                    await unsubscribe_all(ws, [ch])
                await subscribe_all(ws, [ch])
                return ws

            flap_channels = [f"flap.{i}" for i in range(8)]
            results = await asyncio.gather(
                *(storm(si, srv) for si, srv in enumerate(stormed)),
                *(flapper(stormed[i % 2], ch, 40) for i, ch in enumerate(flap_channels)))
            flappers = results[len(stormed):]
            try:
                interest = []
                for si, srv in enumerate(stormed):
                    chans = set().union(*final[si]) | {ch for i, ch in enumerate(flap_channels)
                                                       if i % 2 == si}
                    interest.append((srv, chans))
                    wait_until(lambda: local_interest(srv) == chans,
                               what=f"local interest of {srv.args}")
                wait_redis_matches(cl.redis, interest + [(c, set())], what="Redis after the storm")

                # Redis agrees; now prove the nodes really listen: c publishes
                # one message per channel, every remaining subscriber gets
                # exactly the messages of its channels.
                pub = await ws_connect(c.url())
                try:
                    for ch in storm_channels + flap_channels:
                        await publish(pub, ch, f"after-storm:{ch}")
                    waits = []
                    for si in range(len(stormed)):
                        for k, ws in enumerate(clients[si]):
                            if final[si][k]:
                                want = {(ch, f"after-storm:{ch}") for ch in final[si][k]}
                                waits.append(read_until(ws, want, f"storm client {k} on node {si}"))
                    for i, ws in enumerate(flappers):
                        ch = flap_channels[i]
                        waits.append(read_until(ws, {(ch, f"after-storm:{ch}")}, f"flapper {ch}"))
                    for seen in await asyncio.gather(*waits):
                        self.assertEqual(len(seen), len(set(seen)), f"duplicates: {seen}")
                finally:
                    await close_all([pub])
            finally:
                await close_all([ws for wss in clients.values() for ws in wss] + list(flappers))

            # Everyone gone: no wstrace channel left in Redis.
            wait_redis_matches(cl.redis, [(a, set()), (b, set()), (c, set())],
                               what="Redis once every client left")

    async def test_clusters_sharing_one_redis_are_kept_apart_by_prefix(self):
        # Two clusters on one redis-server: a and b with the default prefix,
        # c and d with --redis-prefix other. A channel of the same name does
        # not leak from one cluster to the other.
        redis = RedisServer()
        redis.start()
        nodes = []
        try:
            nodes = [node(redis.url, "a").start(), node(redis.url, "b").start(),
                     node(redis.url, "c", "--redis-prefix", "other").start(),
                     node(redis.url, "d", "--redis-prefix", "other").start()]
            for srv in nodes:
                wait_link(srv)
            a, b, c, d = nodes
            pub_a, sub_b, sub_c, pub_d = (await ws_connect(a.url()), await ws_connect(b.url()),
                                          await ws_connect(c.url()), await ws_connect(d.url()))
            try:
                await subscribe_all(sub_b, ["room"])
                await subscribe_all(sub_c, ["room"])
                ours, theirs = redis_channel("room"), redis_channel("room", prefix="other:")
                wait_until(lambda: redis.command("PUBSUB", "NUMSUB", ours, theirs)
                           == [ours, 1, theirs, 1],
                           what="one Redis subscriber per cluster, under its own prefix")
                # Each cluster has a stream of its own for the channel.
                self.assertEqual(redis.command("HGET", ours + ":meta", "e"),
                                 positions(sub_b).epoch["room"])
                self.assertEqual(redis.command("HGET", theirs + ":meta", "e"),
                                 positions(sub_c).epoch["room"])
                # a's messages reach b (so Redis has handled them) ...
                for i in range(5):
                    await publish(pub_a, "room", f"from-a-{i}")
                await read_until(sub_b, {("room", f"from-a-{i}") for i in range(5)}, "b")
                # ... then d's fence reaches c: nothing of a's may come before it.
                await publish(pub_d, "room", "fence-from-d")
                seen = await read_until(sub_c, {("room", "fence-from-d")}, "c")
                self.assertEqual(seen, [("room", "fence-from-d")])
            finally:
                await close_all([pub_a, sub_b, sub_c, pub_d])
        finally:
            rcs = [srv.stop() for srv in nodes]
            redis.__exit__()
        self.assertEqual(rcs, [0] * len(nodes))


if __name__ == "__main__":
    unittest.main()
