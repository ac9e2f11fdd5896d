"""Every reply and Error code of the client protocol (docs/PROTOCOL.md)
through a real client (Python websockets): the `id` is echoed and no Error
closes the connection."""

import asyncio
import json
import time
import unittest

import websockets

from wstrace_harness import (AsyncTestCase, Deadline, Positions, WaitTimeout, WstraceServer,
                             check_message, check_subscribed, make_jwt, recv_json, request,
                             subscribe, wait_closed_code, ws_connect)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class ProtocolTest(AsyncTestCase):

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.srv = WstraceServer("--max-content-size", "1KiB", "--max-subscriptions", "3",
                                 threads=2).start()
        self.ws = await ws_connect(self.srv.url())

    async def asyncTearDown(self):
        # The connection survived everything the test sent.
        self.assertEqual(await request(self.ws, {"type": "Ping", "id": "last"}),
                         {"type": "Pong", "id": "last"})
        await self.ws.close()
        self.assertEqual(self.ws.close_code, 1000)
        self.assertEqual(self.srv.stop(), 0)

    async def error(self, payload, code, id_=None):
        await self.ws.send(payload if isinstance(payload, (str, bytes)) else json.dumps(payload))
        r = await recv_json(self.ws)
        self.assertEqual(r.get("type"), "Error", r)
        self.assertEqual(r.get("code"), code, r)
        self.assertIsInstance(r.get("message"), str)
        self.assertTrue(r["message"])
        if id_ is not None:
            self.assertEqual(r.get("id"), id_, r)
        return r

    async def test_ping_pong_and_id_echo(self):
        self.assertEqual(await request(self.ws, {"type": "Ping"}), {"type": "Pong"})
        for id_ in ("abc", 42, -7, 0, 18446744073709551615, 1.5, "ünï"):
            self.assertEqual(await request(self.ws, {"type": "Ping", "id": id_}),
                             {"type": "Pong", "id": id_})
        # Unknown fields are ignored; traceparent is accepted on any message.
        self.assertEqual(await request(self.ws, {"type": "Ping", "id": 1, "extra": [1, 2],
                                                 "traceparent": TRACEPARENT}),
                         {"type": "Pong", "id": 1})

    async def test_subscribe_unsubscribe_replies_echo_id(self):
        check_subscribed(await request(self.ws, {"type": "Subscribe", "channel": "c1", "id": "s"}),
                         "c1", id="s", offset=0)
        self.assertEqual(await request(self.ws, {"type": "Unsubscribe", "channel": "c1", "id": 9}),
                         {"type": "Unsubscribed", "channel": "c1", "id": 9})

    async def test_subscribing_twice_delivers_once(self):
        first = check_subscribed(await request(self.ws, {"type": "Subscribe", "channel": "dup",
                                                         "id": 1}), "dup", id=1)
        # Again: the same position, not a second membership.
        check_subscribed(await request(self.ws, {"type": "Subscribe", "channel": "dup", "id": 2}),
                         "dup", id=2, epoch=first["epoch"], offset=first["offset"])
        await self.ws.send(json.dumps({"type": "Message", "channel": "dup", "content": "once"}))
        check_message(await recv_json(self.ws), "dup", "once", offset=first["offset"] + 1)
        self.assertEqual(await request(self.ws, {"type": "Ping"}), {"type": "Pong"})

    async def test_invalid_json(self):
        await self.error("not json", "invalid_json")
        await self.error('{"type":"Ping","id":"x"', "invalid_json")
        await self.error("[1,2,3]", "invalid_json")
        await self.error('"Ping"', "invalid_json")
        await self.error("", "invalid_json")

    async def test_unknown_type(self):
        await self.error({"type": "Publish", "channel": "c", "id": "u1"}, "unknown_type", "u1")
        await self.error({"type": "ping", "id": 2}, "unknown_type", 2)

    async def test_missing_field(self):
        await self.error({"id": 3}, "missing_field", 3)
        await self.error({"type": "Subscribe", "id": 4}, "missing_field", 4)
        await self.error({"type": "Unsubscribe", "id": 5}, "missing_field", 5)
        await self.error({"type": "Message", "channel": "c", "id": 6}, "missing_field", 6)
        await self.error({"type": "Message", "content": "x", "id": 7}, "missing_field", 7)

    async def test_invalid_channel(self):
        for i, bad in enumerate(["", "has space", "x" * 129, "caf\u00e9", "a*b", "tab\t"]):
            await self.error({"type": "Subscribe", "channel": bad, "id": i}, "invalid_channel", i)
        await self.error({"type": "Message", "channel": "bad channel", "content": "x", "id": "m"},
                         "invalid_channel", "m")
        # The limits themselves are fine: 128 bytes, every allowed character.
        for good in ["x" * 128, "Az09_.:/-"]:
            await subscribe(self.ws, good)

    async def test_message_too_large(self):
        r = await subscribe(self.ws, "big")
        await self.error({"type": "Message", "channel": "big", "content": "x" * 1025, "id": "L"},
                         "message_too_large", "L")
        # At the limit it is published (and the sender, subscribed, gets it):
        # the refused one took no position.
        await self.ws.send(json.dumps({"type": "Message", "channel": "big", "content": "y" * 1024}))
        check_message(await recv_json(self.ws), "big", "y" * 1024, offset=r["offset"] + 1)

    async def test_too_many_subscriptions(self):
        for ch in ("s1", "s2", "s3"):
            await subscribe(self.ws, ch)
        await self.error({"type": "Subscribe", "channel": "s4", "id": "t"},
                         "too_many_subscriptions", "t")
        # Freeing one makes room again.
        await request(self.ws, {"type": "Unsubscribe", "channel": "s1"})
        await subscribe(self.ws, "s4")

    async def test_not_subscribed(self):
        await self.error({"type": "Unsubscribe", "channel": "never", "id": "n"},
                         "not_subscribed", "n")

    async def test_binary_frame_is_unsupported(self):
        await self.error(b"\x00\x01binary", "unsupported_frame")
        await self.error(b'{"type":"Ping","id":1}', "unsupported_frame")

    async def test_many_errors_in_a_row_keep_the_connection(self):
        for i in range(50):
            await self.error({"type": "Nope", "id": i}, "unknown_type", i)
        self.assertEqual(self.srv.stats()["connections"]["active"], 1)


class RateLimitTest(AsyncTestCase):

    async def test_rate_limited_is_an_error_not_a_close(self):
        with WstraceServer("--rate-limit", "5", threads=2) as srv:
            ws = await ws_connect(srv.url())
            pos = Positions()
            pos.subscribed(await subscribe(ws, "rl", id="sub"))
            n = 40
            for i in range(n):
                await ws.send(json.dumps({"type": "Message", "channel": "rl",
                                          "content": str(i), "id": i}))
            # Each message is either published (the sender, subscribed, gets
            # it and a Published for its id, in either order) or refused
            # with rate_limited.
            delivered, limited, published = [], [], {}
            offset_of = {}
            d = Deadline(20, "not every message answered")
            while len(delivered) + len(limited) < n or len(published) < len(delivered):
                try:
                    m = await recv_json(ws, d.left())
                except WaitTimeout:
                    raise d.error(f"(delivered {delivered}, limited {limited}, "
                                  f"published {sorted(published)})") from None
                if m["type"] == "Message":
                    pos.message(m, "rl")
                    delivered.append(int(m["content"]))
                    offset_of[int(m["content"])] = m["offset"]
                elif m["type"] == "Published":
                    pos.published(m, "rl", m.get("id"))
                    self.assertNotIn(m["id"], published, f"two Published for one id: {m}")
                    published[m["id"]] = m["offset"]
                else:
                    self.assertEqual((m["type"], m["code"]), ("Error", "rate_limited"), m)
                    limited.append(m["id"])
            self.assertTrue(limited, "40 messages at once with --rate-limit 5: none limited")
            self.assertTrue(delivered, "every message was limited")
            self.assertEqual(sorted(delivered + limited), list(range(n)))
            self.assertEqual(delivered, sorted(delivered))
            # Published names the position each delivered message got.
            self.assertEqual(published, offset_of)
            self.assertFalse(ws.closed)
            await ws.close()
            self.assertEqual(ws.close_code, 1000)


class AuthTest(AsyncTestCase):
    SECRET = "s3cret-for-tests"

    async def test_anonymous_is_unauthorized_for_subscribe_and_message(self):
        with WstraceServer("--auth-secret", self.SECRET, threads=2) as srv:
            ws = await ws_connect(srv.url())
            self.assertEqual(await request(ws, {"type": "Ping", "id": 1}), {"type": "Pong", "id": 1})
            for msg in ({"type": "Subscribe", "channel": "c", "id": "a"},
                        {"type": "Message", "channel": "c", "content": "x", "id": "b"}):
                r = await request(ws, msg)
                self.assertEqual((r["type"], r["code"], r["id"]), ("Error", "unauthorized", msg["id"]))
            self.assertEqual(await request(ws, {"type": "Ping"}), {"type": "Pong"})
            await ws.close()

    async def test_valid_token_in_query_or_header(self):
        with WstraceServer("--auth-secret", self.SECRET, threads=2) as srv:
            token = make_jwt({"sub": "alice", "exp": int(time.time()) + 3600}, self.SECRET)
            a = await ws_connect(srv.url(f"/ws?token={token}"))
            b = await ws_connect(srv.url(), extra_headers={"Authorization": f"Bearer {token}"})
            r = await subscribe(a, "private")
            await b.send(json.dumps({"type": "Message", "channel": "private", "content": "hi"}))
            check_message(await recv_json(a), "private", "hi", offset=r["offset"] + 1)
            _, body = srv.admin_get("/api/connections")
            users = {c.get("user_id") for c in json.loads(body)["connections"]}
            self.assertEqual(users, {"alice"})
            await a.close()
            await b.close()

    async def test_bad_tokens_get_101_then_close_1008(self):
        with WstraceServer("--auth-secret", self.SECRET, threads=2) as srv:
            bad = [make_jwt({"sub": "mallory"}, "wrong-secret"),
                   make_jwt({"sub": "late", "exp": int(time.time()) - 60}, self.SECRET),
                   "not.a.jwt", "garbage"]
            for token in bad:
                ws = await ws_connect(srv.url(f"/ws?token={token}"))
                self.assertEqual(await wait_closed_code(ws), 1008, token)


class BrowserTest(AsyncTestCase):

    async def test_traceparent_query_parameter_is_accepted(self):
        with WstraceServer(threads=1) as srv:
            for q in (f"?traceparent={TRACEPARENT}", "?traceparent=garbage",
                      f"?foo=1&traceparent={TRACEPARENT}&bar=2"):
                ws = await ws_connect(srv.url("/ws" + q))
                self.assertEqual(await request(ws, {"type": "Ping"}), {"type": "Pong"})
                await ws.close()
            ws = await ws_connect(srv.url(), extra_headers={"traceparent": TRACEPARENT})
            self.assertEqual(await request(ws, {"type": "Ping"}), {"type": "Pong"})
            await ws.close()

    async def test_origin_allowed_list(self):
        with WstraceServer("--allowed-origins", "https://app.example.com,https://*.example.org",
                           threads=1) as srv:
            for origin in ("https://app.example.com", "https://x.example.org"):
                ws = await ws_connect(srv.url(), origin=origin)
                self.assertEqual(await request(ws, {"type": "Ping"}), {"type": "Pong"})
                await ws.close()
            with self.assertRaises(websockets.InvalidStatusCode) as cm:
                await ws_connect(srv.url(), origin="https://evil.example.net")
            self.assertEqual(cm.exception.status_code, 403)


if __name__ == "__main__":
    unittest.main()
