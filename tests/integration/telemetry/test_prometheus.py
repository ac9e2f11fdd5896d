"""/metrics read by the real thing: `promtool check metrics` on the live
exposition (no error, no lint warning), and a Debian prometheus server
scraping it every second until its query API reports the target up, every
exposed sample ingested, and wstrace's counters with the values the
scripted session implies.

Also values on /metrics: websocket.channels.active, the --channel-metrics
top-N labels with "other", process.open_file_descriptor.count, and
websocket.delivery.latency observed when a blocked subscriber's frames are
actually written (not when they are queued).
"""

import subprocess
import unittest

from telemetry_support import Prometheus, run_main, tmpdir
from wstrace_harness import (Positions, RawClient, WstraceServer, check_message, raw_subscribe,
                             wait_until)

SCRAPE_DEADLINE = 30.0  # scrapes happen every second; this is only a bound


def sample_lines(text):
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


def scripted_session(srv):
    """Three accepted connections, one rejected upgrade, one publication
    delivered to two subscribers, two Pings; everything closed."""
    clients = [RawClient(srv.port) for _ in range(3)]
    try:
        for c in clients:
            c.handshake()
        first = raw_subscribe(clients[0], "prom")
        raw_subscribe(clients[1], "prom", epoch=first["epoch"], offset=first["offset"])
        clients[2].send_json({"type": "Message", "channel": "prom", "content": "hi"})
        for c in clients[:2]:
            check_message(c.read_json(), "prom", "hi", offset=first["offset"] + 1)
        for c in clients[1:]:
            c.send_json({"type": "Ping"})
            assert c.read_json() == {"type": "Pong"}
        for c in clients:
            c.send_close(1000)
            c.read_close()
            c.expect_eof()
    finally:
        for c in clients:
            c.close()
    with RawClient(srv.port) as r:
        r.handshake(path="/not-here", expect=404)
    srv.wait_stats(lambda s: s["connections"]["active"] == 0, what="all closed")


class PrometheusScrape(unittest.TestCase):

    def test_promtool_check_metrics_passes(self):
        with WstraceServer(threads=2) as srv:
            scripted_session(srv)
            status, text = srv.admin_get("/metrics")
            self.assertEqual(status, 200)
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout.strip(), r.stderr.strip()), (0, "", ""),
                         "promtool check metrics complained")

    def test_prometheus_scrapes_wstrace(self):
        d = tmpdir(self, "wstrace-prom-")
        with WstraceServer(threads=2) as srv:
            scripted_session(srv)
            status, text = srv.admin_get("/metrics")
            self.assertEqual(status, 200)
            n_samples = len(sample_lines(text))
            with Prometheus(d, f"127.0.0.1:{srv.admin_port}") as prom:
                def value(expr):
                    res = prom.query(expr)
                    return float(res[0]["value"][1]) if len(res) == 1 else None

                try:
                    wait_until(lambda: value('up{job="wstrace"}') == 1, SCRAPE_DEADLINE,
                               interval=0.2, what="prometheus: target up")
                    # The counters reach Prometheus with the session's values.
                    wait_until(lambda: value('websocket_connections_total'
                                             '{job="wstrace",outcome="accepted"}') == 3,
                               SCRAPE_DEADLINE, interval=0.2,
                               what="websocket_connections_total{outcome=accepted} == 3")
                except AssertionError:
                    print(prom.log())
                    raise
                [target] = [t for t in prom.targets() if t["labels"].get("job") == "wstrace"]
                self.assertEqual(target["health"], "up", target)
                self.assertEqual(target["lastError"], "", target)

                self.assertEqual(value('websocket_connections_total{outcome="rejected",'
                                       'reason="not_found"}'), 1)
                self.assertEqual(value("websocket_messages_broadcasted_total"), 1)
                self.assertEqual(value('websocket_messages_received_total{type="Ping"}'), 2)
                self.assertEqual(value('websocket_messages_sent_total{type="Message"}'), 2)
                self.assertEqual(value("websocket_connection_duration_seconds_count"), 3)
                self.assertEqual(value('websocket_connection_duration_seconds_bucket{le="+Inf"}'),
                                 3)
                self.assertEqual(value("websocket_connections_active"), 0)
                self.assertEqual(value('target_info{service_name="wstrace"}'), 1)
                # Every sample line of the exposition was ingested (the set of
                # series is fixed once the server runs).
                self.assertEqual(value('scrape_samples_scraped{job="wstrace"}'), n_samples)
                # Two scrapes later rate() works on a counter, and is 0: nothing
                # happens between scrapes.
                wait_until(lambda: (value('count_over_time(up{job="wstrace"}[5m])') or 0) >= 2,
                           SCRAPE_DEADLINE, interval=0.2, what="a second scrape")
                self.assertEqual(value("rate(websocket_bytes_received_total[5m])"), 0)
                self.assertEqual(prom.stop(), 0, prom.log())


class MetricValues(unittest.TestCase):

    def test_channels_and_channel_metrics(self):
        """websocket.channels.active counts channels with a subscriber on
        this node; --channel-metrics 2 labels the two busiest channels and
        puts the rest under "other"."""
        with WstraceServer("--channel-metrics", "2", threads=2) as srv:
            with RawClient(srv.port) as c:
                c.handshake()
                pos = Positions()
                for ch in ("a", "b", "c", "d"):
                    pos.subscribed(raw_subscribe(c, ch))
                c.send_json({"type": "Unsubscribe", "channel": "d"})
                self.assertEqual(c.read_json(), {"type": "Unsubscribed", "channel": "d"})
                for ch in ("a", "a", "a", "b", "b", "c"):
                    c.send_json({"type": "Message", "channel": ch, "content": "x"})
                    pos.message(c.read_json(), ch, "x")
                m = srv.metrics()
                self.assertEqual(m.value("websocket_channels_active"), 3)
                self.assertEqual(m.value("websocket_subscriptions_active"), 3)
                self.assertEqual(m.value("websocket_channel_messages_total", channel="a"), 3)
                self.assertEqual(m.value("websocket_channel_messages_total", channel="b"), 2)
                self.assertEqual(m.value("websocket_channel_messages_total", channel="other"), 1)
                labels = {lb.get("channel") for n, lb, _ in m.samples
                          if n == "websocket_channel_messages_total"}
                self.assertEqual(labels, {"a", "b", "other"})
                subs = {lb.get("channel"): v for n, lb, v in m.samples
                        if n == "websocket_channel_subscribers"}
                self.assertEqual(set(subs), {"a", "b", "other"})
                self.assertEqual(sum(subs.values()), 3)
                fds = m.value("process_open_file_descriptor_count")
                self.assertIsNotNone(fds, "process_open_file_descriptor_count missing")
                self.assertGreater(fds, 0)
                self.assertGreater(m.value("process_thread_count"), 0)
                c.send_close(1000)
                c.read_close()
            srv.wait_stats(lambda s: s["connections"]["active"] == 0, what="closed")
            self.assertEqual(srv.metrics().value("websocket_channels_active"), 0)

    def test_delivery_latency_is_observed_when_written(self):
        """A subscriber that does not read: its frames queue on the server.
        Their delivery latency is observed only once they are written, so
        while the subscriber is blocked the histogram has fewer observations
        than deliveries, and after it reads everything, exactly as many."""
        n, size = 200, 30000
        with WstraceServer("--max-backpressure", "64MiB", threads=1) as srv:
            sub = RawClient(srv.port, rcvbuf=4096)
            self.addCleanup(sub.close)
            sub.handshake()
            pos = Positions()
            pos.subscribed(raw_subscribe(sub, "lat"))
            with RawClient(srv.port) as pub:
                pub.handshake()
                for i in range(n):
                    pub.send_json({"type": "Message", "channel": "lat",
                                   "content": f"{i:05d}" + "x" * size})

                def queued():
                    status, body = srv.admin_get("/api/connections")
                    conns = __import__("json").loads(body)["connections"]
                    return sum(c["queued_bytes"] for c in conns)

                wait_until(lambda: srv.metrics().value("websocket_messages_sent_total",
                                                       type="Message") == n,
                           what="every publication handed to the subscriber")
                wait_until(lambda: queued() > 0, what="frames queued for the subscriber")
                observed = srv.metrics().value("websocket_delivery_latency_seconds_count")
                self.assertLess(observed, n, "latency observed for frames not yet written")
                for i in range(n):
                    self.assertEqual(pos.message(sub.read_json(), "lat")["content"][:5], f"{i:05d}")
                wait_until(lambda: srv.metrics().value(
                    "websocket_delivery_latency_seconds_count") == n,
                    what="one latency observation per written delivery")
                pub.send_close(1000)
                pub.read_close()


if __name__ == "__main__":
    run_main(prometheus=True)
