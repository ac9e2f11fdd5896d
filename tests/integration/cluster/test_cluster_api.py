"""The server API across three nodes behind one real redis-server: a
publish through node A's API reaches the subscribers of B and C at the
offset it answered; disconnect, subscribe and unsubscribe reach a user's
connections on every node (control plane over Redis), info lists every node
with its connections and channels merges them; a node killed with SIGKILL
is reported missing instead of hanging the answer; Redis down: 503.
The admin port's /api/traces?trace_id= (the dashboard's waterfall) gathers
one trace's spans from every node, each span naming its node; local=1 and a
link that is down give this node's spans only.
"""

import asyncio
import os
import signal
import json
import time
import unittest

import jwt

from cluster_support import (RedisServer, node, publish, recv_json, subscribe_all, wait_link,
                             wait_redis_matches, wait_until, ws_connect)
from wstrace_harness import AsyncTestCase, api_call, subscribe

SECRET = "cluster-api-secret"


def token(user):
    return jwt.encode({"sub": user, "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")


def api(srv, method, body=None, http_method="POST"):
    return api_call(srv, method, body, http_method=http_method)


class ClusterApi(AsyncTestCase):

    def start_cluster(self, n=3):
        redis = RedisServer()
        redis.start()
        self.addCleanup(redis.__exit__)
        nodes = []
        for i in range(n):
            srv = node(redis.url, f"n{i + 1}", "--api", "127.0.0.1:0", "--auth-secret", SECRET)
            srv.start()
            self.addCleanup(srv.stop)
            nodes.append(srv)
        for srv in nodes:
            wait_link(srv)
        return redis, nodes

    async def user(self, srv, name):
        return await ws_connect(srv.url(f"/ws?token={token(name)}"))

    async def test_publish_on_one_node_reaches_the_others(self):
        redis, (a, b, c) = self.start_cluster()
        sb, sc = await self.user(b, "x"), await self.user(c, "y")
        pb, pc = await subscribe(sb, "news"), await subscribe(sc, "news")
        for i in range(10):
            status, r = await asyncio.to_thread(api, a, "publish",
                                                {"channel": "news", "content": f"m{i}"})
            self.assertEqual(status, 200, r)
            self.assertEqual(r["epoch"], pb["epoch"])
            for ws in (sb, sc):
                m = await recv_json(ws)
                self.assertEqual((m["content"], m["offset"]), (f"m{i}", r["offset"]))
        self.assertEqual(pb["epoch"], pc["epoch"])
        await sb.close()
        await sc.close()

    async def test_user_actions_reach_every_node(self):
        redis, nodes = self.start_cluster()
        a, b, c = nodes
        alice = [await self.user(a, "alice"), await self.user(b, "alice")]
        bob = await self.user(c, "bob")
        status, info = await asyncio.to_thread(api, c, "info", http_method="GET")
        self.assertEqual(status, 200, info)
        self.assertEqual([n["node_id"] for n in info["nodes"]], ["n1", "n2", "n3"])
        self.assertEqual(info["connections"], 3)
        status, r = await asyncio.to_thread(api, c, "subscribe",
                                            {"user": "alice", "channel": "inbox.alice"})
        self.assertEqual((status, r), (200, {"subscribed": 2, "nodes": 3}))
        for ws in alice:
            self.assertEqual((await recv_json(ws))["type"], "Subscribed")
        status, r = await asyncio.to_thread(api, b, "channels")
        self.assertIn({"channel": "inbox.alice", "subscribers": 2}, r["channels"])
        status, r = await asyncio.to_thread(api, a, "publish",
                                            {"channel": "inbox.alice", "content": "hello"})
        for ws in alice:
            self.assertEqual((await recv_json(ws))["content"], "hello")
        status, r = await asyncio.to_thread(api, a, "unsubscribe",
                                            {"user": "alice", "channel": "inbox.alice"})
        self.assertEqual((status, r), (200, {"unsubscribed": 2, "nodes": 3}))
        for ws in alice:
            self.assertEqual((await recv_json(ws))["type"], "Unsubscribed")
        status, r = await asyncio.to_thread(api, c, "disconnect",
                                            {"user": "alice", "code": 4003, "reason": "banned"})
        self.assertEqual((status, r), (200, {"disconnected": 2, "nodes": 3}))
        for ws in alice:
            await ws.wait_closed()
            self.assertEqual((ws.close_code, ws.close_reason), (4003, "banned"))
        self.assertEqual((await asyncio.wait_for(self._ping(bob), 10)), "Pong")
        await bob.close()

    async def test_a_dead_node_is_missing_not_waited_for(self):
        redis, (a, b, c) = self.start_cluster()
        # A node that hangs (SIGSTOP: still subscribed in Redis, answering
        # nothing) is named missing once the bound has passed.
        os.kill(c.pid, signal.SIGSTOP)
        try:
            status, r = await asyncio.to_thread(api, a, "disconnect", {"user": "nobody"})
        finally:
            os.kill(c.pid, signal.SIGCONT)
        self.assertEqual((status, r), (200, {"disconnected": 0, "nodes": 2, "missing_nodes": 1}))
        c.kill()  # SIGKILL: its Redis connections go, the others do not know yet
        wait_until(lambda: len(redis.command("PUBSUB", "NUMSUB", "wstrace:__control")) == 2 and
                   int(redis.command("PUBSUB", "NUMSUB", "wstrace:__control")[1]) == 2,
                   what="Redis dropped the killed node's subscriptions")
        status, r = await asyncio.to_thread(api, a, "disconnect", {"user": "nobody"})
        self.assertEqual((status, r), (200, {"disconnected": 0, "nodes": 2}))
        # Redis gone: nothing can be asked.
        redis.kill9()
        wait_link(a, up=False)
        status, r = await asyncio.to_thread(api, a, "info")
        self.assertEqual((status, r["error"]["code"]), (503, "unavailable"))
        status, r = await asyncio.to_thread(api, a, "publish", {"channel": "x", "content": "y"})
        self.assertEqual((status, r["error"]["code"]), (503, "unavailable"))

    async def test_a_trace_gathers_every_nodes_spans(self):
        redis, (a, b, c) = self.start_cluster()
        subs = [await self.user(b, "x"), await self.user(c, "y")]
        pub = await self.user(a, "p")
        await asyncio.gather(*(subscribe_all(ws, ["traced"]) for ws in subs))
        wait_redis_matches(redis, [(a, set()), (b, {"traced"}), (c, {"traced"})])
        trace_id = os.urandom(16).hex()
        await publish(pub, "traced", "m", traceparent=f"00-{trace_id}-{os.urandom(8).hex()}-01")
        for ws in subs:
            self.assertEqual((await recv_json(ws))["content"], "m")

        def traces(srv, query=""):
            status, body = srv.admin_get(f"/api/traces?trace_id={trace_id}{query}")
            self.assertEqual(status, 200, body)
            return json.loads(body)

        def fanouts_on_b_and_c():
            doc = traces(a)
            nodes = {s["node"] for s in doc["spans"] if s["name"] == "websocket.fanout"}
            return doc if {"n2", "n3"} <= nodes else None

        doc = wait_until(fanouts_on_b_and_c, what="the fan-out spans of n2 and n3 in n1's answer")
        self.assertEqual((doc["nodes"], doc["missing"]), (["n1", "n2", "n3"], 0))
        spans = doc["spans"]
        self.assertTrue(all(s["trace_id"] == trace_id for s in spans), spans)
        broadcast = [s for s in spans if s["name"] == "websocket.broadcast"]
        self.assertEqual([s["node"] for s in broadcast], ["n1"])
        for s in spans:
            if s["name"] == "websocket.fanout" and s["node"] != "n1":
                self.assertEqual(s["parent_span_id"], broadcast[0]["span_id"])
        # Asked on another node: the same spans. local=1: that node's own.
        wait_until(lambda: {s["span_id"] for s in traces(c)["spans"]} ==
                   {s["span_id"] for s in spans}, what="n3 to answer the same spans")
        local = traces(c, "&local=1")
        self.assertNotIn("nodes", local)
        self.assertTrue(local["spans"] and all(s["node"] == "n3" for s in local["spans"]), local)
        # The link down: this node's spans, and why no other node's.
        redis.kill9()
        wait_link(a, up=False)
        doc = traces(a)
        self.assertEqual((doc["nodes"], doc["missing"]), (["n1"], None))
        self.assertIn("cluster link is down", doc["error"])
        self.assertTrue(doc["spans"] and all(s["node"] == "n1" for s in doc["spans"]), doc)
        for ws in subs + [pub]:
            await ws.close()

    async def _ping(self, ws):
        await ws.send('{"type":"Ping"}')
        return (await recv_json(ws))["type"]


if __name__ == "__main__":
    unittest.main()
