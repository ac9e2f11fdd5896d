"""/api/samples: one sample per second of the node, whose counts add up to
what /api/stats counts after a scripted workload (every message in, every
message out, every byte), with delivery latency quantiles for the seconds
that delivered, the connections and per-thread sockets at each second's
end, and ?since= returning only newer samples."""

import asyncio
import json
import unittest

import websockets

from wstrace_harness import IO_TIMEOUT, AsyncTestCase, WstraceServer, wait_until


def samples(srv, since=None):
    status, body = srv.admin_get("/api/samples" + (f"?since={since}" if since is not None else ""))
    assert status == 200, (status, body)
    return json.loads(body)


class Samples(AsyncTestCase):

    async def test_samples_add_up_to_the_stats_after_a_workload(self):
        with WstraceServer("--heartbeat-interval", "0") as srv:
            subs = [await websockets.connect(srv.url(), ping_interval=None) for _ in range(3)]
            pub = await websockets.connect(srv.url(), ping_interval=None)
            try:
                for i, ws in enumerate(subs):
                    await ws.send(json.dumps({"type": "Subscribe", "channel": "s", "id": i}))
                    await asyncio.wait_for(ws.recv(), IO_TIMEOUT)
                for i in range(50):
                    await pub.send(json.dumps({"type": "Message", "channel": "s", "content": f"m{i}"}))
                for ws in subs:
                    for _ in range(50):
                        await asyncio.wait_for(ws.recv(), IO_TIMEOUT)
                # Quiet from here: wait for a sample that ends after the
                # workload, then everything counted so far is in the samples.
                before = srv.stats()
                # A worker adds some counts to the metrics a moment after
                # the fact (a connection's handshake bytes, for one): wait,
                # bounded, for a sample after which the totals of the
                # samples and of /api/stats agree.
                last = {}

                def agree():
                    j = samples(srv)
                    st = srv.stats()
                    ss = j["samples"]
                    last.update(samples=j, stats=st)
                    return (j, st) if ss and all(
                        sum(x[k] for x in ss) == st[group][total]
                        for k, group, total in (("messages_in", "messages", "received_total"),
                                                ("messages_out", "messages", "sent_total"),
                                                ("bytes_in", "bytes", "received_total"),
                                                ("bytes_out", "bytes", "sent_total"))) else None
                try:
                    got, stats = wait_until(agree, what="the samples to add up to /api/stats")
                except AssertionError:
                    ss = last["samples"]["samples"]
                    self.fail(f"samples sum to in={sum(x['messages_in'] for x in ss)} "
                              f"out={sum(x['messages_out'] for x in ss)} "
                              f"bytes_in={sum(x['bytes_in'] for x in ss)} "
                              f"bytes_out={sum(x['bytes_out'] for x in ss)}; stats: "
                              f"{last['stats']['messages']} {last['stats']['bytes']}")
                self.assertEqual(stats["messages"], before["messages"], "the server was quiet")
                ss = got["samples"]
                self.assertEqual(got["interval_ms"], 1000)
                self.assertEqual(got["capacity"], 900)
                self.assertEqual(sum(s["messages_in"] for s in ss), stats["messages"]["received_total"])
                self.assertEqual(sum(s["messages_out"] for s in ss), stats["messages"]["sent_total"])
                self.assertEqual(sum(s["bytes_in"] for s in ss), stats["bytes"]["received_total"])
                self.assertEqual(sum(s["bytes_out"] for s in ss), stats["bytes"]["sent_total"])
                self.assertEqual(sum(s["deliveries"] for s in ss), 150)
                busy = [s for s in ss if s["deliveries"] > 0]
                for s in busy:
                    self.assertGreater(s["delivery_p50_ms"], 0)
                    self.assertGreaterEqual(s["delivery_p99_ms"], s["delivery_p50_ms"])
                for s in ss:
                    if s["deliveries"] == 0:
                        self.assertIsNone(s["delivery_p50_ms"])
                    self.assertGreater(s["interval_ms"], 0)
                    self.assertEqual(len(s["sockets_per_thread"]), 2)
                    self.assertIsNone(s["cluster_link"])
                last = ss[-1]
                self.assertEqual(last["connections"], 4)
                self.assertEqual(sum(last["sockets_per_thread"]), 4)
                self.assertEqual(last["drops"], {})
                newer = samples(srv, since=ss[-1]["t"])["samples"]
                self.assertTrue(all(s["t"] > ss[-1]["t"] for s in newer))
                self.assertEqual(samples(srv, since=ss[-1]["t"] + 10**9)["samples"], [])
            finally:
                for ws in subs + [pub]:
                    await ws.close()

    async def test_heartbeat_round_trips_are_sampled(self):
        with WstraceServer("--heartbeat-interval", "200ms") as srv:
            async with websockets.connect(srv.url()):
                # Polled from a thread: the loop must stay free to answer the Pings.
                await asyncio.to_thread(
                    wait_until, lambda: any(s["rtt_count"] > 0 and s["rtt_p50_ms"] is not None
                                            and s["rtt_p99_ms"] >= s["rtt_p50_ms"]
                                            for s in samples(srv)["samples"]),
                    what="a sample with heartbeat RTTs")


if __name__ == "__main__":
    unittest.main()
