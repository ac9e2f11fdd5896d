"""Presence and Join/Leave (channel rules presence, join_leave) with Python
websockets and the server API: exact counts of clients and users, the list,
Join and Leave pushed to the other subscribers (on both worker threads),
leaves on Unsubscribe and on a dropped connection, a channel without the
rule answered not_enabled, and nothing pushed for channels without
join_leave."""

import asyncio
import os
import tempfile
import time

import jwt

from wstrace_harness import (AsyncTestCase, WstraceServer, api_call, recv_json, request,
                             subscribe, wait_until, ws_connect)

SECRET = "presence-secret"
RULES = ('[[channel]]\nmatch = "room:*"\npresence = true\njoin_leave = true\n'
         '[[channel]]\nmatch = "count:*"\npresence = true\n')


def token(user):
    return jwt.encode({"sub": user, "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")


class Presence(AsyncTestCase):

    def server(self):
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write(RULES)
        self.addCleanup(os.unlink, f.name)
        return WstraceServer("--config", f.name, "--auth-secret", SECRET, "--api", "127.0.0.1:0",
                             threads=2)

    async def connect(self, srv, user):
        return await ws_connect(srv.url(f"/ws?token={token(user)}"))

    def api_presence(self, srv, channel):
        return api_call(srv, "presence", {"channel": channel})

    async def test_counts_list_join_and_leave(self):
        with self.server() as srv:
            # Several connections, so they land on both worker threads.
            first = await self.connect(srv, "alice")
            await subscribe(first, "room:1")
            others = []
            for user in ("alice", "bob", "carol", "bob"):
                ws = await self.connect(srv, user)
                await subscribe(ws, "room:1")
                j = await recv_json(first, what=f"Join of {user}")
                self.assertEqual((j["type"], j["channel"], j["user"]), ("Join", "room:1", user))
                others.append(ws)
            r = await request(first, {"type": "Presence", "channel": "room:1", "id": 7})
            self.assertEqual((r["type"], r["id"], r["count"], r["users"]), ("Presence", 7, 5, 3))
            self.assertEqual(sorted(c["user"] for c in r["clients"]),
                             ["alice", "alice", "bob", "bob", "carol"])
            ids = {c["connection_id"] for c in r["clients"]}
            status, a = await asyncio.to_thread(self.api_presence, srv, "room:1")
            self.assertEqual((status, a["count"], a["users"]), (200, 5, 3))
            # Leaves: an Unsubscribe, and a connection that just goes away.
            await request(others[1], {"type": "Unsubscribe", "channel": "room:1"})
            lv = await recv_json(first, what="Leave on Unsubscribe")
            self.assertEqual((lv["type"], lv["user"]), ("Leave", "bob"))
            self.assertIn(lv["connection_id"], ids)
            others[2].transport.abort()
            lv = await recv_json(first, what="Leave on a dropped connection")
            self.assertEqual((lv["type"], lv["user"]), ("Leave", "carol"))
            r = await request(first, {"type": "Presence", "channel": "room:1"})
            self.assertEqual((r["count"], r["users"]), (3, 2))
            for ws in [first] + others:
                await ws.close()
            wait_until(lambda: self.api_presence(srv, "room:1")[1]["count"] == 0,
                       what="everyone gone")

    async def test_presence_without_join_leave_and_channels_without_the_rule(self):
        with self.server() as srv:
            a = await self.connect(srv, "alice")
            b = await self.connect(srv, "bob")
            await subscribe(a, "count:1")
            await subscribe(b, "count:1")
            # No Join pushed (join_leave is off): the next frame a gets is its own reply.
            r = await request(a, {"type": "Presence", "channel": "count:1"})
            self.assertEqual((r["type"], r["count"], r["users"]), ("Presence", 2, 2))
            r = await request(a, {"type": "Presence", "channel": "plain"})
            self.assertEqual((r["type"], r["code"]), ("Error", "not_enabled"))
            status, e = await asyncio.to_thread(self.api_presence, srv, "plain")
            self.assertEqual((status, e["error"]["code"]), (400, "not_enabled"))
            m = srv.metrics()
            self.assertEqual(m.value("websocket_messages_received_total", type="Presence"), 2)
            await a.close()
            await b.close()
