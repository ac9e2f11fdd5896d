"""Faults in a cluster of wstrace nodes (scale-out over Redis, docs/CLUSTER.md
and docs/STREAMS.md): Redis down at start, Redis killed with SIGKILL mid-run
and restarted on the same port (it keeps no data: every channel starts a new
epoch, announced with a Gap "reset"), one node killed with SIGKILL while the
others carry on. Without Redis nothing can give a publication its position:
Messages are refused (Error unavailable with an id, else dropped), and a
Subscribe the node cannot place is refused too; clients stay connected.
"""

import asyncio
import json
import random
import unittest

from cluster_support import (RedisServer, close_all, cluster_stats, connect_many, delivery_round,
                             free_port, gaps, metric, next_message, next_reply, node, positions,
                             publish, read_until, recv_json, subscribe_all, unsubscribe_all,
                             wait_link, wait_redis_matches, wait_until, ws_connect)
from wstrace_harness import IO_TIMEOUT, AsyncTestCase, Deadline, check_subscribed

CH = "cross"


def is_link_down_log(j):
    return str(j.get("msg", "")).startswith("cluster link down")


def count_logs(srv, pred):
    return sum(1 for j in srv.log_lines() if pred(j))


def readyz(srv):
    return srv.admin_get("/readyz")[0]


def is_unavailable(r, id_):
    return (isinstance(r, dict) and r.get("type") == "Error" and r.get("code") == "unavailable"
            and r.get("id") == id_ and isinstance(r.get("message"), str) and r["message"])


async def refused_while_down(pub, subs, tag, count, label):
    """Without Redis: pub's `count` Messages to CH are not published -- the
    first, with an id, is answered Error unavailable, the others (no id)
    get nothing -- and the subscribers `subs` (same node) get none of them:
    the next thing each reads is the Pong to a Ping sent after them."""
    await pub.send(json.dumps({"type": "Message", "channel": CH, "content": f"{tag}:0",
                               "id": f"{tag}:0"}))
    r = await recv_json(pub, what=f"{label}: the answer to a Message with an id")
    assert is_unavailable(r, f"{tag}:0"), f"{label}: {r}"
    for i in range(1, count):
        await publish(pub, CH, f"{tag}:{i}")
    for ws in [pub] + list(subs):
        await ws.send(json.dumps({"type": "Ping", "id": tag}))
        r = await recv_json(ws, what=f"{label}: the Pong")
        assert r == {"type": "Pong", "id": tag}, f"{label}: delivered without Redis: {r}"


def assert_one_reset(test, ws, channel, before, label):
    """ws got exactly one Gap on `channel` since `before` (a count of its
    gaps): the reset to a new epoch of a Redis that lost its data, with
    nothing of the new epoch lost (every node was subscribed again before
    anything was published)."""
    new = [g for g in gaps(ws)[before:] if g["channel"] == channel]
    test.assertEqual(len(new), 1, f"{label}: Gaps on {channel}: {new}")
    test.assertEqual((new[0].get("reset"), new[0]["from"], new[0]["to"]), (True, 1, 0),
                     f"{label}: {new[0]}")


class ClusterFaultTest(AsyncTestCase):

    async def test_redis_down_at_start_then_up(self):
        redis = RedisServer(port=free_port())  # not started: nothing listens there
        n1 = node(redis.url, "n1").start()
        n2 = node(redis.url, "n2").start()
        clients = []
        try:
            for srv in (n1, n2):
                self.assertIsNotNone(srv.wait_log(is_link_down_log, 20),
                                     f"no 'cluster link down' log:\n{srv.stderr_text()}")
                self.assertEqual(readyz(srv), 503)
                self.assertEqual(srv.admin_get("/healthz")[0], 200)
                c = cluster_stats(srv)
                self.assertFalse(c["link_up"], c)
                self.assertEqual(metric(srv, "websocket_pubsub_link_up"), 0)

            # Local clients are served, and told what cannot be done without
            # Redis: nothing can place a subscriber in the channel's stream
            # or give a publication its position.
            s1, p1 = await connect_many(n1.url(), 2)
            s2, p2 = await connect_many(n2.url(), 2)
            clients = [s1, p1, s2, p2]
            for i, ws in enumerate(clients):
                for req in ({"type": "Subscribe", "channel": CH, "id": f"sub{i}"},
                            {"type": "History", "channel": CH, "id": f"hist{i}"}):
                    await ws.send(json.dumps(req))
                    r = await recv_json(ws, what=f"the answer to {req}")
                    self.assertTrue(is_unavailable(r, req["id"]), r)
                await ws.send(json.dumps({"type": "Ping", "id": i}))
                self.assertEqual(await recv_json(ws), {"type": "Pong", "id": i})
            for srv in (n1, n2):
                srv.wait_stats(lambda st: st["subscriptions"] == 0 and st["channels"] == 0,
                               what="no subscription left by the refused Subscribes")
            await refused_while_down(p1, [s1], "n1-alone", 20, "n1 while Redis is down")
            await refused_while_down(p2, [s2], "n2-alone", 20, "n2 while Redis is down")
            # ... and what needed the cluster was dropped, counted and logged.
            for srv in (n1, n2):
                wait_until(lambda: metric(srv, "websocket_pubsub_dropped_total",
                                          reason="link_down") == 20,
                           what="link_down drops counted")
                self.assertIsNotNone(
                    srv.wait_log(lambda j: j.get("msg") == "publications not sent to the cluster",
                                 20))
                self.assertEqual(cluster_stats(srv)["published_total"], 0)

            # Redis comes up: both nodes connect (backoff), become ready,
            # subscribe what their clients want, and deliver across nodes.
            redis.start()
            try:
                for srv in (n1, n2):
                    self.assertIsNotNone(
                        srv.wait_log(lambda j: j.get("msg") == "cluster link up", 30),
                        f"no 'cluster link up' log:\n{srv.stderr_text()}")
                    wait_link(srv, True)
                    wait_until(lambda: readyz(srv) == 200, what="/readyz 200")
                    self.assertEqual(metric(srv, "websocket_pubsub_link_up"), 1)
                    # Failed attempts and the first connection of each of
                    # the two links are not reconnects.
                    self.assertEqual(metric(srv, "websocket_pubsub_reconnects_total"), 0)
                    # Nothing to subscribe in Redis: the Subscribes were refused.
                    up = srv.wait_log(lambda j: j.get("msg") == "cluster link up", 1)
                    self.assertEqual(up.get("channels"), 0, up)
                wait_redis_matches(redis, [(n1, set()), (n2, set())])

                # Now they subscribe, both nodes in one stream of the channel.
                r1 = (await subscribe_all(s1, [CH]))[CH]
                r2 = (await subscribe_all(s2, [CH]))[CH]
                self.assertEqual((r1["offset"], r2["offset"]), (0, 0),
                                 "a publication refused without Redis took a position")
                self.assertEqual(r1["epoch"], r2["epoch"])
                wait_redis_matches(redis, [(n1, {CH}), (n2, {CH})])

                # s1 and s2 each get both publishers' messages exactly once.
                await delivery_round([("p1", p1, [CH]), ("p2", p2, [CH])],
                                     [("s1", s1, {(CH, "p1"), (CH, "p2")}),
                                      ("s2", s2, {(CH, "p1"), (CH, "p2")})], "up", 20)
                for srv in (n1, n2):
                    c = cluster_stats(srv)
                    self.assertEqual(c["published_total"], 22, c)
                    # Both nodes' publications, its own too: they come back.
                    self.assertEqual(c["received_total"], 44, c)
                    self.assertEqual(metric(srv, "websocket_pubsub_lag_seconds_count"), 22)
                self.assertEqual((gaps(s1), gaps(s2)), ([], []))
                # What was refused for want of Redis counts as dropped
                # (unavailable): on each node one Message with an id, 19
                # without.
                for srv in (n1, n2):
                    self.assertEqual(metric(srv, "websocket_messages_dropped_total",
                                            reason="unavailable"), 20, srv.args)
            finally:
                await close_all(clients)
                clients = []
                rcs = [n1.stop(), n2.stop()]
                self.assertEqual(rcs, [0, 0])
        finally:
            await close_all(clients)
            n1.kill()
            n2.kill()
            redis.__exit__()

    async def test_redis_killed_and_restarted_mid_run(self):
        with RedisServer() as redis:
            nodes = [node(redis.url, f"n{i + 1}").start() for i in range(3)]
            subs, pubs, subs_extra = [], [], []
            try:
                for srv in nodes:
                    wait_link(srv)
                    s, p = await connect_many(srv.url(), 2)
                    subs.append(s)
                    pubs.append(p)
                await asyncio.gather(*(subscribe_all(s, [CH]) for s in subs))
                # Interest that changes while Redis is away: n1 loses
                # "left.during", n2 gains "joined.during".
                leaver = await ws_connect(nodes[0].url())
                joiner = await ws_connect(nodes[1].url())
                subs_extra = [leaver, joiner]
                await subscribe_all(leaver, ["left.during"])
                wait_redis_matches(redis, [(nodes[0], {CH, "left.during"}), (nodes[1], {CH}),
                                           (nodes[2], {CH})])
                names = [f"p{i + 1}" for i in range(3)]
                publishers = [(names[i], pubs[i], [CH]) for i in range(3)]
                receivers = [(f"s{i + 1}", subs[i], {(CH, n) for n in names}) for i in range(3)]
                await delivery_round(publishers, receivers, "before", 10)

                reconnects0 = [metric(srv, "websocket_pubsub_reconnects_total") for srv in nodes]
                self.assertEqual(reconnects0, [0, 0, 0], "first connections counted as reconnects")
                ups0 = [count_logs(srv, lambda j: j.get("msg") == "cluster link up")
                        for srv in nodes]
                pids = [srv.pid for srv in nodes]

                # Redis dies.
                redis.kill9()
                for srv in nodes:
                    wait_link(srv, False)
                    self.assertIsNotNone(srv.wait_log(is_link_down_log, 20))
                    self.assertEqual(readyz(srv), 503)
                    self.assertEqual(metric(srv, "websocket_pubsub_link_up"), 0)
                    self.assertEqual(cluster_stats(srv)["redis_subscriptions"], 0)

                # Nothing is published while Redis is away, not even locally:
                # the clients are told so (Error unavailable to a Message
                # with an id) and the subscribers get nothing ...
                await asyncio.gather(*(refused_while_down(pubs[i], [subs[i]], f"p{i + 1}-outage",
                                                          30, f"n{i + 1} during the outage")
                                       for i in range(3)))
                # ... what needed the cluster is dropped, counted, logged.
                for srv in nodes:
                    wait_until(lambda: metric(srv, "websocket_pubsub_dropped_total",
                                              reason="link_down") > 0,
                               what=f"link_down drops on {srv.args}")
                    self.assertIsNotNone(srv.wait_log(
                        lambda j: j.get("msg") == "publications not sent to the cluster", 20))
                    self.assertEqual(metric(srv, "websocket_pubsub_dropped_total",
                                            reason="queue_full"), 0)
                # n1 loses interest in "left.during"; n2 cannot gain one in a
                # channel it does not deliver yet: the Subscribe is refused
                # and leaves nothing to resubscribe.
                await unsubscribe_all(leaver, ["left.during"])
                await joiner.send(json.dumps({"type": "Subscribe", "channel": "joined.during",
                                              "id": "j"}))
                r = await recv_json(joiner, what="the answer to a Subscribe without Redis")
                self.assertTrue(is_unavailable(r, "j"), r)
                epochs = [positions(s).epoch[CH] for s in subs]
                self.assertEqual(len(set(epochs)), 1, epochs)

                # Redis is back on the same port: the nodes reconnect on their
                # own, log it, count it, resubscribe, and are ready again.
                redis.start()
                for i, srv in enumerate(nodes):
                    wait_until(lambda: count_logs(srv, lambda j: j.get("msg") == "cluster link up")
                               > ups0[i], timeout=30, what="'cluster link up' after the restart")
                    wait_link(srv, True)
                    wait_until(lambda: readyz(srv) == 200, what="/readyz 200 after the restart")
                    self.assertGreaterEqual(metric(srv, "websocket_pubsub_reconnects_total"),
                                            reconnects0[i] + 2)
                    self.assertEqual(srv.pid, pids[i])
                    self.assertTrue(srv.running())
                wait_redis_matches(redis, [(nodes[0], {CH}), (nodes[1], {CH}), (nodes[2], {CH})],
                                   what="resubscribed after the restart")
                await subscribe_all(joiner, ["joined.during"])
                wait_redis_matches(redis, [(nodes[0], {CH}), (nodes[1], {CH, "joined.during"}),
                                           (nodes[2], {CH})],
                                   what="the joiner's channel subscribed")

                # Cross-node delivery resumes, exactly once, with the same
                # client connections; nothing published during the outage
                # shows up late on any node (collect rejects other tags).
                # Redis lost the channel's state: a new epoch, which every
                # subscriber is told about with a Gap "reset" from the epoch
                # it was in before its first message of the new one.
                before = [len(gaps(s)) for s in subs]
                await delivery_round(publishers + [("p3j", pubs[2], ["joined.during"])],
                                     receivers + [("joiner", joiner, {("joined.during", "p3j")})],
                                     "after", 20)
                for i, s in enumerate(subs):
                    assert_one_reset(self, s, CH, before[i], f"s{i + 1}")
                    self.assertNotEqual(positions(s).epoch[CH], epochs[0])
                self.assertEqual(len({positions(s).epoch[CH] for s in subs}), 1)
                self.assertEqual(gaps(joiner), [])
                for srv in nodes:
                    self.assertEqual(metric(srv, "websocket_pubsub_publish_errors_total"), 0)
            finally:
                await close_all(subs + pubs + subs_extra)
                rcs = [srv.stop() for srv in nodes]
            self.assertEqual(rcs, [0, 0, 0])

    async def test_redis_killed_and_restarted_under_continuous_traffic(self):
        """Publishers on every node never stop while Redis dies and comes
        back. Every subscriber gets each publisher's messages (its own
        node's too: they need Redis as well) in order, never twice, at
        contiguous offsets but for one Gap "reset" (Redis lost the stream:
        a new epoch), with a gap at most during the outage, and every message
        published once the cluster is whole again."""
        run = asyncio.to_thread  # blocking waits off the event loop: clients keep reading
        with RedisServer() as redis:
            nodes = [node(redis.url, f"n{i + 1}").start() for i in range(3)]
            clients = []
            try:
                for srv in nodes:
                    await run(wait_link, srv)
                subs, pubs = [], []
                for srv in nodes:
                    wss = await connect_many(srv.url(), 3)
                    clients += wss
                    subs.append(wss[:2])
                    pubs.append(wss[2])
                await asyncio.gather(*(subscribe_all(s, [CH]) for ss in subs for s in ss))
                await run(wait_redis_matches, redis, [(srv, {CH}) for srv in nodes])

                names = [f"p{i + 1}" for i in range(3)]
                sent = [0, 0, 0]          # next seq per publisher
                stop = asyncio.Event()

                async def publisher(i):
                    # Bounded in count too; wait_sent() bounds it in time.
                    while not stop.is_set() and sent[i] < 50_000:
                        await publish(pubs[i], CH, f"{names[i]}:{sent[i]}")
                        sent[i] += 1
                        await asyncio.sleep(0.002)  # pacing, not synchronisation
                    await publish(pubs[i], CH, f"{names[i]}:done")

                async def receiver(ni, ws):
                    got = {n: [] for n in names}
                    pending = set(names)
                    while pending:
                        m = await next_message(ws, what=f"n{ni + 1}: the next message")
                        p, _, seq = m["content"].partition(":")
                        if seq == "done":
                            self.assertIn(p, pending, f"n{ni + 1}: duplicate done from {p}")
                            pending.discard(p)
                        else:
                            got[p].append(int(seq))
                    return got

                readers = [asyncio.ensure_future(receiver(ni, ws))
                           for ni, ss in enumerate(subs) for ws in ss]
                tasks = [asyncio.ensure_future(publisher(i)) for i in range(3)]

                async def wait_sent(n):
                    # Let each publisher send n more messages.
                    target = [s + n for s in sent]
                    d = Deadline(IO_TIMEOUT, f"the publishers did not send {n} more messages")
                    while any(sent[i] < target[i] for i in range(3)):
                        d.left(f"(sent {sent}, want {target})")
                        await asyncio.sleep(0.01)  # polling the counters, with a deadline
                        for t in tasks + readers:
                            if t.done() and t.exception():
                                raise t.exception()

                await wait_sent(50)
                redis.kill9()
                for srv in nodes:
                    await run(wait_link, srv, False)
                await wait_sent(50)  # all of these during the outage
                redis.start()
                for srv in nodes:
                    await run(wait_link, srv, True)
                await run(wait_redis_matches, redis, [(srv, {CH}) for srv in nodes],
                          what="resubscribed under traffic")
                recovered = list(sent)  # published from here on must reach everyone
                await wait_sent(50)
                stop.set()
                await asyncio.gather(*tasks)
                results = await asyncio.gather(*readers)

                k = 0
                for ni, ss in enumerate(subs):
                    for ws in ss:
                        got = results[k]
                        k += 1
                        [g] = gaps(ws)  # checked against its positions on arrival
                        self.assertTrue(g.get("reset"), f"n{ni + 1}: {g}")
                        for pi, p in enumerate(names):
                            seqs = got[p]
                            self.assertEqual(seqs, sorted(set(seqs)),
                                             f"n{ni + 1}: {p} out of order or duplicated")
                            missing = set(range(recovered[pi], sent[pi])) - set(seqs)
                            self.assertFalse(missing, f"n{ni + 1}: {p} lost {sorted(missing)[:10]} "
                                                      "after the cluster was whole again")
                            self.assertLess(len(seqs), sent[pi],
                                            f"n{ni + 1}: nothing of {p} was lost in the outage?")
                            self.assertIn(0, seqs, f"n{ni + 1}: {p}'s first messages lost")
                for srv in nodes:
                    self.assertTrue(srv.running())
                    self.assertGreater(metric(srv, "websocket_pubsub_dropped_total",
                                              reason="link_down"), 0)
            finally:
                await close_all(clients)
                rcs = [srv.stop() for srv in nodes]
            self.assertEqual(rcs, [0, 0, 0])

    async def test_interest_churn_across_a_redis_crash(self):
        """Clients keep joining and leaving channels on n1 before, during and
        after a Redis crash; once the churn stops, n1's Redis subscriptions
        are exactly its local interest, and every channel it wants works.
        While the link is down a Subscribe the node cannot place is refused
        (Error unavailable) and subscribes nothing."""
        run = asyncio.to_thread
        rng = random.Random(3)
        channels = [f"churn.{i}" for i in range(16)]
        with RedisServer() as redis:
            n1 = node(redis.url, "n1").start()
            n2 = node(redis.url, "n2").start()
            clients = []
            try:
                await run(wait_link, n1)
                await run(wait_link, n2)
                clients = await connect_many(n1.url(), 40)
                model = [set() for _ in clients]
                ops_done = [0]
                refused = [0]  # Subscribes answered Error unavailable

                async def churn(k, ws, ops, may_refuse):
                    for _ in range(ops):
                        ch = rng.choice(channels)
                        if ch in model[k]:
                            await unsubscribe_all(ws, [ch])
                            model[k].discard(ch)
                        else:
                            rid = f"{k}:{ch}:{ops_done[0]}"
                            await ws.send(json.dumps({"type": "Subscribe", "channel": ch,
                                                      "id": rid}))
                            r = await next_reply(ws, what=f"churn client {k}: the answer to "
                                                          f"Subscribe {ch}")
                            if r.get("type") == "Subscribed":
                                positions(ws).subscribed(check_subscribed(r, ch, id=rid))
                                model[k].add(ch)
                            else:
                                self.assertTrue(may_refuse and is_unavailable(r, rid),
                                                f"churn client {k}, Subscribe {ch}: {r}")
                                refused[0] += 1
                        ops_done[0] += 1

                async def phase(ops, may_refuse=False):
                    await asyncio.gather(*(churn(k, ws, ops, may_refuse)
                                           for k, ws in enumerate(clients)))

                await phase(10)
                # Churn goes on while Redis dies ...
                killed = asyncio.ensure_future(phase(10, may_refuse=True))
                redis.kill9()
                await run(wait_link, n1, False)
                await killed
                # All of it while Redis is down: a Subscribe is answered from
                # the position of a channel the client's thread delivers
                # already, else refused.
                await phase(10, may_refuse=True)
                redis.start()
                # ... and while it comes back.
                restarting = asyncio.ensure_future(phase(10, may_refuse=True))
                await run(wait_link, n1, True)
                await restarting
                await run(wait_link, n2, True)  # n2 publishes below
                interest = set().union(*model)
                self.assertEqual(ops_done[0], 40 * 40)
                await run(wait_redis_matches, redis, [(n1, interest), (n2, set())],
                          what="n1's Redis subscriptions after the churn")
                pub = await ws_connect(n2.url())
                clients.append(pub)
                for ch in channels:
                    await publish(pub, ch, f"end:{ch}")
                try:
                    await asyncio.gather(*(read_until(ws, {(ch, f"end:{ch}") for ch in model[k]},
                                                      f"churn client {k}")
                                           for k, ws in enumerate(clients[:40]) if model[k]))
                except AssertionError as e:
                    raise AssertionError(f"{e}\nn1 cluster stats {cluster_stats(n1)}, n2 "
                                         f"{cluster_stats(n2)}, interest {sorted(interest)}, "
                                         f"Redis {sorted(redis.channels())}") from None
            finally:
                await close_all(clients)
                rcs = [n1.stop(), n2.stop()]
            self.assertEqual(rcs, [0, 0])

    async def test_node_killed_others_carry_on(self):
        with RedisServer() as redis:
            nodes = [node(redis.url, f"n{i + 1}").start() for i in range(3)]
            clients = []
            try:
                subs, pubs = [], []
                for srv in nodes:
                    wait_link(srv)
                    wss = await connect_many(srv.url(), 4)
                    clients += wss
                    subs.append(wss[:3])
                    pubs.append(wss[3])
                await asyncio.gather(*(subscribe_all(s, [CH]) for ss in subs for s in ss))
                wait_redis_matches(redis, [(srv, {CH}) for srv in nodes])
                names = [f"p{i + 1}" for i in range(3)]
                await delivery_round(
                    [(names[i], pubs[i], [CH]) for i in range(3)],
                    [(f"n{i + 1}s{k}", s, {(CH, n) for n in names})
                     for i in range(3) for k, s in enumerate(subs[i])], "all-three", 10)

                # n3 dies without a word; Redis notices its connections close.
                victim = nodes[2]
                victim.kill()
                self.assertEqual(victim.returncode, -9)
                wait_redis_matches(redis, [(nodes[0], {CH}), (nodes[1], {CH})],
                                   what="Redis without n3")
                # n1 and n2 carry on: still up, still exactly once.
                for srv in nodes[:2]:
                    self.assertTrue(cluster_stats(srv)["link_up"])
                    self.assertEqual(readyz(srv), 200)
                await delivery_round(
                    [(names[i], pubs[i], [CH]) for i in range(2)],
                    [(f"n{i + 1}s{k}", s, {(CH, n) for n in names[:2]})
                     for i in range(2) for k, s in enumerate(subs[i])], "two-left", 20)
                for srv in nodes[:2]:
                    self.assertEqual(metric(srv, "websocket_pubsub_dropped_total"), 0)
                # n3's clients saw their connection end.
                for s in subs[2] + [pubs[2]]:
                    await asyncio.wait_for(s.wait_closed(), 20)
            finally:
                await close_all(clients)
                rcs = [srv.stop() for srv in nodes[:2]]
            self.assertEqual(rcs, [0, 0])


if __name__ == "__main__":
    unittest.main()
