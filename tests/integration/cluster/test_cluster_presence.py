"""Presence and Join/Leave across three nodes behind one real redis-server:
the counts and the list cover every node, Join and Leave reach the
subscribers of every node, and a node killed with SIGKILL (no Leave ever
sent) vanishes from the answers within --presence-ttl; Redis restarted
empty: the living nodes write their members again."""

import asyncio
import json
import os
import tempfile
import time
import unittest

import jwt

from cluster_support import RedisServer, node, recv_json, wait_link, wait_until, ws_connect
from wstrace_harness import AsyncTestCase, api_call, request, subscribe

SECRET = "cluster-presence"
RULES = '[[channel]]\nmatch = "room:*"\npresence = true\njoin_leave = true\npropagate = true\n'


def token(user):
    return jwt.encode({"sub": user, "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")


class ClusterPresence(AsyncTestCase):

    def start(self, redis):
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write(RULES)
        self.addCleanup(os.unlink, f.name)
        nodes = []
        for i in range(3):
            srv = node(redis.url, f"n{i + 1}", "--config", f.name, "--auth-secret", SECRET,
                       "--api", "127.0.0.1:0", "--presence-ttl", "2s", expect_clean_exit=False)
            srv.start()
            self.addCleanup(srv.stop)
            nodes.append(srv)
        for srv in nodes:
            wait_link(srv)
        return nodes

    def api_presence(self, srv, channel):
        return api_call(srv, "presence", {"channel": channel})

    async def test_presence_spans_the_nodes_and_forgets_a_dead_one(self):
        redis = RedisServer()
        redis.start()
        self.addCleanup(redis.__exit__)
        a, b, c = self.start(redis)
        watcher = await ws_connect(a.url(f"/ws?token={token('watcher')}"))
        await subscribe(watcher, "room:1")
        joined = []
        for srv, user in ((b, "bob"), (c, "carol"), (c, "carol")):
            ws = await ws_connect(srv.url(f"/ws?token={token(user)}"))
            await subscribe(ws, "room:1")
            j = await recv_json(watcher, what=f"Join of {user} on another node")
            self.assertEqual((j["type"], j["user"], j["node"]),
                             ("Join", user, "n2" if srv is b else "n3"))
            joined.append(ws)
        r = await request(watcher, {"type": "Presence", "channel": "room:1"})
        self.assertEqual((r["count"], r["users"]), (4, 3))
        self.assertEqual(sorted((x["node"], x["user"]) for x in r["clients"]),
                         [("n1", "watcher"), ("n2", "bob"), ("n3", "carol"), ("n3", "carol")])
        status, p = await asyncio.to_thread(self.api_presence, b, "room:1")
        self.assertEqual((status, p["count"]), (200, 4))
        # propagate: a Message from n3 reaches n1 with the publication's trace context.
        trace = "0af7651916cd43dd8448eb211c80319c"
        await joined[1].send(json.dumps({"type": "Message", "channel": "room:1", "content": "t",
                                         "traceparent": f"00-{trace}-b7ad6b7169203331-01"}))
        m = await recv_json(watcher, what="the traced message from n3")
        self.assertEqual((m["type"], m["traceparent"].split("-")[1]), ("Message", trace))
        # A Leave crosses nodes too.
        await request(joined[0], {"type": "Unsubscribe", "channel": "room:1"})
        lv = await recv_json(watcher, what="bob's Leave")
        self.assertEqual((lv["type"], lv["user"], lv["node"]), ("Leave", "bob", "n2"))
        # n3 dies without a word: its two members expire (--presence-ttl 2s).
        c.kill()
        wait_until(lambda: self.api_presence(a, "room:1")[1]["count"] == 1, timeout=15,
                   what="the killed node's members expired")
        # Redis restarts empty: the living nodes write their members again.
        redis.kill9()
        redis.start()
        wait_link(a)
        wait_until(lambda: self.api_presence(a, "room:1")[1].get("count") == 1, timeout=15,
                   what="n1's member written again after the Redis restart")
        await watcher.close()
        for ws in joined[:1]:
            await ws.close()


if __name__ == "__main__":
    unittest.main()
