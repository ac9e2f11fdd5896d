"""One publish is one trace across the cluster (docs/TELEMETRY.md and
docs/CLUSTER.md), checked in what an OTLP receiver decoded with
@opentelemetry/otlp-transformer: the publishing node's websocket.broadcast
span, and on every node a websocket.fanout span whose parent is that
broadcast span, the nodes told apart by service.instance.id. Also the
websocket.pubsub.lag histogram as exported over OTLP.
"""

import asyncio
import os
import unittest

from cluster_support import (IO_TIMEOUT, OtlpReceiver, RedisServer, close_all, connect_many,
                             node, otlp_available, positions, publish, read_until, subscribe_all,
                             wait_link, wait_redis_matches, wait_until)
from wstrace_harness import AsyncTestCase

CH = "traced"
SPAN_KIND_PRODUCER, SPAN_KIND_CONSUMER = 4, 5
FLAG_HAS_IS_REMOTE, FLAG_IS_REMOTE = 0x100, 0x200


@unittest.skipUnless(otlp_available(), "node or tests/integration/otlp/node_modules missing")
class ClusterTraceTest(AsyncTestCase):

    async def test_one_publish_is_one_trace_over_all_nodes(self):
        with OtlpReceiver() as rx, RedisServer() as redis:
            nodes = []
            # Both OTLP encodings in one cluster: n2 exports JSON.
            for i, proto in enumerate(["http/protobuf", "http/json", "http/protobuf"]):
                env = {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint,
                       "OTEL_EXPORTER_OTLP_PROTOCOL": proto,
                       "OTEL_SERVICE_NAME": "wstrace-cluster-it",
                       "OTEL_BSP_SCHEDULE_DELAY": "100",
                       "OTEL_METRIC_EXPORT_INTERVAL": "3600000"}
                nodes.append(node(redis.url, f"n{i + 1}", env=env).start())
            clients = []
            try:
                for srv in nodes:
                    wait_link(srv)
                # Subscribers: 1 on n1, 2 on n2, 3 on n3; the publisher on n1.
                subs = []
                for i, srv in enumerate(nodes):
                    wss = await connect_many(srv.url(), i + 1)
                    subs.append(wss)
                    clients += wss
                pub1 = (await connect_many(nodes[0].url(), 1))[0]
                pub2 = (await connect_many(nodes[1].url(), 1))[0]
                clients += [pub1, pub2]
                await asyncio.gather(*(subscribe_all(ws, [CH]) for wss in subs for ws in wss))
                wait_redis_matches(redis, [(srv, {CH}) for srv in nodes])

                # First a publish whose client said "not sampled": no node may
                # export any of it (the sampled flag crosses Redis too).
                unsampled_id = os.urandom(16).hex()
                await publish(pub1, CH, "unsampled-0",
                              traceparent=f"00-{unsampled_id}-{os.urandom(8).hex()}-00")
                trace_id = os.urandom(16).hex()
                client_span = os.urandom(8).hex()
                await publish(pub1, CH, "traced-1", traceparent=f"00-{trace_id}-{client_span}-01")
                # Then one without a traceparent, from n2: still one trace.
                await publish(pub2, CH, "untraced-2")
                await asyncio.gather(*(read_until(ws, {(CH, "unsampled-0"), (CH, "traced-1"),
                                                       (CH, "untraced-2")}, "subscriber")
                                       for wss in subs for ws in wss))

                def spans_named(name, tid=None):
                    return [(res, sp) for res, sp in rx.spans()
                            if sp.get("name") == name and (tid is None or sp["traceId"] == tid)]

                # 1. The traced publish: broadcast on n1 under the client's
                # span (through websocket.message.handle), fan-out on all three.
                def traced_complete():
                    b = spans_named("websocket.broadcast", trace_id)
                    f = spans_named("websocket.fanout", trace_id)
                    return (b, f) if len(b) >= 1 and len(f) >= 3 else None

                broadcasts, fanouts = wait_until(traced_complete, IO_TIMEOUT,
                                                 what="broadcast + 3 fanout spans in the export")
                self.assertEqual(len(broadcasts), 1, broadcasts)
                bres, bspan = broadcasts[0]
                self.assertEqual(bres.get("service.instance.id"), "n1")
                self.assertEqual(bres.get("service.name"), "wstrace-cluster-it")
                self.assertEqual(bspan["kind"], SPAN_KIND_PRODUCER)
                self.assertEqual(bspan["traceId"], trace_id)
                handles = {sp["spanId"]: sp for _, sp in spans_named("websocket.message.handle",
                                                                       trace_id)}
                self.assertIn(bspan.get("parentSpanId"), handles,
                              "broadcast is not a child of the message's handle span")
                self.assertEqual(handles[bspan["parentSpanId"]].get("parentSpanId"), client_span)

                by_node = {}
                for res, sp in fanouts:
                    by_node.setdefault(res.get("service.instance.id"), []).append(sp)
                self.assertEqual(sorted(by_node), ["n1", "n2", "n3"],
                                 "one fanout per node, told apart by service.instance.id")
                offsets = set()
                for i, nid in enumerate(["n1", "n2", "n3"]):
                    self.assertEqual(len(by_node[nid]), 1, f"{nid}: {by_node[nid]}")
                    sp = by_node[nid][0]
                    self.assertEqual(sp["traceId"], trace_id)
                    self.assertEqual(sp.get("parentSpanId"), bspan["spanId"],
                                     f"fanout on {nid} is not a child of n1's broadcast")
                    self.assertEqual(sp["kind"], SPAN_KIND_CONSUMER)
                    a = {x["key"]: x["value"] for x in sp.get("attributes", [])}
                    self.assertEqual(a["messaging.destination.name"]["stringValue"], CH)
                    self.assertEqual(int(a["websocket.fanout.recipients"]["intValue"]), i + 1)
                    # One position on every node, in the epoch every
                    # subscriber has (the publications of n1 and n2 may be
                    # sequenced in either order).
                    offset = int(a["websocket.stream.offset"]["intValue"])
                    self.assertIn(offset, (1, 2, 3), nid)
                    self.assertEqual(a["messaging.message.id"]["stringValue"],
                                     f"{positions(subs[0][0]).epoch[CH]}:{offset}", nid)
                    offsets.add(offset)
                    # Span.flags: sampled, and across Redis the parent is
                    # remote (on n1 it is local).
                    flags = int(sp.get("flags", 0))
                    want = 0x01 | FLAG_HAS_IS_REMOTE | (FLAG_IS_REMOTE if nid != "n1" else 0)
                    self.assertEqual(flags & (0xFF | FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE), want,
                                     f"{nid} fanout flags {flags:#x}")
                self.assertEqual(len(offsets), 1, f"one position on every node: {offsets}")

                # 2. No client traceparent, published on n2: the broadcast
                # starts a trace of its own and every node's fanout joins it.
                def untraced_complete():
                    for res, b in spans_named("websocket.broadcast"):
                        if res.get("service.instance.id") != "n2" or b["traceId"] == trace_id:
                            continue
                        f = spans_named("websocket.fanout", b["traceId"])
                        if len(f) >= 3:
                            return b, f
                    return None

                b2, f2 = wait_until(untraced_complete, IO_TIMEOUT,
                                    what="n2's broadcast and its fanouts on three nodes")
                self.assertEqual(sorted(r.get("service.instance.id") for r, _ in f2),
                                 ["n1", "n2", "n3"])
                for _, sp in f2:
                    self.assertEqual(sp.get("parentSpanId"), b2["spanId"])
            finally:
                await close_all(clients)
                rcs = [srv.stop() for srv in nodes]
            self.assertEqual(rcs, [0, 0, 0])

            # 3. The lag histogram, as exported at shutdown: n2 and n3
            # received n1's two publications, n1 and n3 received n2's.
            def lag_counts():
                out = {}
                for req in rx.requests():
                    if req.get("signal") != "metrics" or "error" in req:
                        continue
                    for rm in req["request"].get("resourceMetrics", []):
                        rattrs = {x["key"]: x["value"].get("stringValue")
                                  for x in (rm.get("resource") or {}).get("attributes", [])}
                        for sm in rm.get("scopeMetrics", []):
                            for m in sm.get("metrics", []):
                                if m.get("name") != "websocket.pubsub.lag":
                                    continue
                                self.assertEqual(m.get("unit"), "s")
                                pts = m.get("histogram", {}).get("dataPoints", [])
                                out[rattrs.get("service.instance.id")] = sum(
                                    int(p.get("count", 0)) for p in pts)
                return out if len(out) == 3 else None

            counts = wait_until(lag_counts, IO_TIMEOUT, what="websocket.pubsub.lag from 3 nodes")
            self.assertEqual(counts, {"n1": 1, "n2": 2, "n3": 3})

            # Every node flushed its spans at shutdown: nothing of the
            # unsampled publish anywhere.
            leaked = [(r.get("service.instance.id"), sp["name"]) for r, sp in rx.spans()
                      if sp["traceId"] == unsampled_id]
            self.assertEqual(leaked, [], "spans exported for a trace the client did not sample")

    async def test_a_backend_trace_goes_on_through_the_api_to_every_node(self):
        # A backend's request with a traceparent, on n1's server API: its
        # server span, the broadcast under it, the fan-out on all three nodes.
        import http.client
        import json
        with OtlpReceiver() as rx, RedisServer() as redis:
            env = {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100",
                   "OTEL_METRIC_EXPORT_INTERVAL": "3600000"}
            nodes = [node(redis.url, f"n{i + 1}", "--api", "127.0.0.1:0", env=env).start()
                     for i in range(3)]
            clients = []
            try:
                for srv in nodes:
                    wait_link(srv)
                for srv in nodes:
                    clients += await connect_many(srv.url(), 1)
                await asyncio.gather(*(subscribe_all(ws, [CH]) for ws in clients))
                wait_redis_matches(redis, [(srv, {CH}) for srv in nodes])
                trace_id, backend_span = os.urandom(16).hex(), os.urandom(8).hex()

                def post():
                    conn = http.client.HTTPConnection("127.0.0.1", nodes[0].api_port, timeout=20)
                    conn.request("POST", "/api/v1/publish",
                                 body=json.dumps({"channel": CH, "content": "from-backend"}),
                                 headers={"traceparent": f"00-{trace_id}-{backend_span}-01"})
                    r = conn.getresponse()
                    return r.status, json.loads(r.read())

                status, r = await asyncio.to_thread(post)
                self.assertEqual(status, 200, r)
                await asyncio.gather(*(read_until(ws, {(CH, "from-backend")}, "subscriber")
                                       for ws in clients))

                def complete():
                    sp = [(res, x) for res, x in rx.spans() if x["traceId"] == trace_id]
                    names = [x["name"] for _, x in sp]
                    return sp if names.count("websocket.fanout") >= 3 and \
                        "websocket.broadcast" in names and "POST /api/v1/publish" in names else None

                spans = wait_until(complete, IO_TIMEOUT, what="API, broadcast and 3 fanout spans")
                by = {}
                for res, x in spans:
                    by.setdefault(x["name"], []).append((res, x))
                (sres, server), = by["POST /api/v1/publish"]
                self.assertEqual((sres.get("service.instance.id"), server["kind"]), ("n1", 2))
                self.assertEqual(server.get("parentSpanId"), backend_span)
                (_, bspan), = by["websocket.broadcast"]
                self.assertEqual(bspan.get("parentSpanId"), server["spanId"])
                self.assertEqual(sorted(res.get("service.instance.id") for res, _ in
                                        by["websocket.fanout"]), ["n1", "n2", "n3"])
                for _, f in by["websocket.fanout"]:
                    self.assertEqual(f.get("parentSpanId"), bspan["spanId"])
            finally:
                await close_all(clients)
                for srv in nodes:
                    srv.stop()


if __name__ == "__main__":
    unittest.main()
