"""/healthz means every event loop turns, and admin answers say when they
are partial.

A real way to stick a worker thread: its log output goes to a pipe nobody
reads. Once the pipe is full, the worker blocks in write() while logging a
"connection open" debug line; the admin thread logs nothing per request and
keeps answering. /healthz must then fail naming the stuck worker, and
/api/connections (which asks every worker) must say it is partial. Reading
the pipe again unsticks the worker and both recover."""

import json
import os
import signal
import subprocess
import threading
import time
import unittest

import http.client

from wstrace_harness import START_TIMEOUT, STOP_TIMEOUT, RawClient, ServerError, wait_until, wstrace_bin


def admin_get(port, path, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


class StuckWorker(unittest.TestCase):

    def test_healthz_fails_while_a_worker_is_stuck_and_answers_say_partial(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("WSTRACE_")}
        proc = subprocess.Popen(
            [wstrace_bin(), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--threads", "2",
             "--log-format", "json", "--log-level", "debug", "--stall-timeout", "500ms",
             "--heartbeat-interval", "0", "--client-timeout", "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self.addCleanup(self.stop, proc)
        ports = None
        deadline = time.monotonic() + START_TIMEOUT
        while ports is None:
            if time.monotonic() > deadline:
                raise ServerError("wstrace did not log 'wstrace listening'")
            line = proc.stderr.readline()
            if not line:
                raise ServerError("wstrace exited before listening")
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("msg") == "wstrace listening":
                ports = (int(j["port"]), int(j["admin_port"]))
        port, admin = ports
        # From here on nobody reads the server's stderr.
        self.assertEqual(admin_get(admin, "/healthz"), (200, "ok\n"))

        clients = []
        stuck = None
        for i in range(5000):
            c = RawClient(port, timeout=2)
            clients.append(c)
            self.addCleanup(c.close)
            c.send_raw(c.request_bytes())
            try:
                c.read_http_response(timeout=2)
            except Exception:  # noqa: BLE001 - a timeout, however the harness names it
                # No 101: the worker that took it is stuck in a write() to
                # the full pipe.
                status, body = wait_until(
                    lambda: (lambda r: r if r[0] == 503 else None)(admin_get(admin, "/healthz")),
                    timeout=10, what="/healthz failing while a worker is stuck")
                stuck = body
                break
        self.assertIsNotNone(stuck, "no worker got stuck on the full log pipe")
        self.assertRegex(stuck, r"worker \d: event loop stalled for \d+\.\d s")
        status, body = admin_get(admin, "/api/connections", timeout=15)
        self.assertEqual(status, 200)
        j = json.loads(body)
        self.assertTrue(j.get("partial"), j)
        self.assertTrue(j["missing_threads"], j)
        status, body = admin_get(admin, "/api/channels", timeout=15)
        self.assertTrue(json.loads(body).get("partial"))

        # Read the pipe again: the worker goes on, health comes back.
        def drain():
            fd = proc.stderr.fileno()
            try:
                while os.read(fd, 1 << 16):
                    pass
            except OSError:
                pass

        self.draining = True
        threading.Thread(target=drain, daemon=True).start()
        wait_until(lambda: admin_get(admin, "/healthz")[0] == 200, timeout=20,
                   what="/healthz ok again once the worker is unstuck")
        j = json.loads(admin_get(admin, "/api/connections")[1])
        self.assertNotIn("partial", j)
        self.assertEqual(j["total"], len(clients))

    draining = False

    def stop(self, proc):
        # Unless the pipe is being read again, closing our end of it
        # unsticks a worker still writing to it.
        if not self.draining:
            proc.stderr.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    unittest.main()
