"""Start-up and reload.

- A bad value stops wstrace before anything starts: exit 2 and a message
  naming the option (never "shutting down" of a server that never ran).
- A port another process listens on is refused (exit 1, naming --listen or
  --admin and saying what to do), unless every process sharing it was
  started with --reuse-port.
- SIGHUP never stops the server: it reloads the configuration, applies what
  can change live (the log level), refuses a bad one and keeps the old, and
  names changes that need a restart."""

import asyncio
import os
import signal
import subprocess
import tempfile
import unittest

from wstrace_harness import (AsyncTestCase, RawClient, WstraceServer, request, wait_until,
                             ws_connect, wstrace_bin)

RUN_TIMEOUT = 20  # a wstrace that should exit at once, bounded


def run_wstrace(*args):
    """Runs wstrace to its end (it must exit by itself); returns the result."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSTRACE_") or k == "WSTRACE_BIN"}
    try:
        return subprocess.run([wstrace_bin(), *args], capture_output=True, text=True,
                              timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"wstrace {' '.join(args)} did not exit within {RUN_TIMEOUT} s "
                             "(it should refuse to start)") from None


def config_file(test, text):
    fd, path = tempfile.mkstemp(suffix=".toml", prefix="wstrace-startup-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    test.addCleanup(os.unlink, path)
    return path


def rewrite(path, text):
    with open(path, "w") as f:
        f.write(text)


class StartupErrors(unittest.TestCase):

    def expect_refused(self, args, option, code=2):
        r = run_wstrace(*args)
        self.assertEqual(r.returncode, code, f"wstrace {args}: {r.stderr}")
        self.assertIn(option, r.stderr, f"the message should name {option}")
        self.assertNotIn("shutting down", r.stderr)
        self.assertNotIn("wstrace listening", r.stderr)
        return r.stderr

    def test_bad_values_exit_2_naming_the_option(self):
        for args, option in [
                (["--listen", "nonsense"], "--listen"),
                (["--listen", ":99999"], "--listen"),
                (["--listen", "[::1"], "--listen"),
                (["--admin", "localhost"], "--admin"),
                (["--admin", "127.0.0.1:70000"], "--admin"),
                (["--threads", "many"], "--threads"),
                (["--send-buffer", "2GiB"], "--send-buffer"),
                (["--stall-timeout", "1ms"], "--stall-timeout"),
                (["--redis", "http://x"], "--redis")]:
            with self.subTest(args=args):
                self.expect_refused(args, option)

    def test_toml_text_without_quotes_says_to_quote_it(self):
        path = config_file(self, "listen = 127.0.0.1:0\n")
        err = self.expect_refused(["--config", path], "--config")
        self.assertIn('listen = "127.0.0.1:0"', err)

    def test_the_first_bad_value_of_a_file_is_reported(self):
        path = config_file(self, 'max-backpressure = "lots"\nthreads = "x"\nlisten = "?"\n')
        err = self.expect_refused(["--config", path], "max-backpressure")
        self.assertNotIn("threads", err)


class PortSharing(unittest.TestCase):

    def test_a_second_process_on_the_listen_port_is_refused(self):
        with WstraceServer() as a:
            err = StartupErrors.expect_refused(
                self, ["--listen", f"127.0.0.1:{a.port}", "--admin", "off"], "--listen", code=1)
            self.assertIn("--reuse-port", err, "the message should say what to do")
            # The first one is untouched: it still answers.
            c = RawClient(a.port)
            self.addCleanup(c.close)
            c.handshake()
            c.send_json({"type": "Ping", "id": 1})
            self.assertEqual(c.read_json(), {"type": "Pong", "id": 1})
            self.assertEqual(a.stats()["connections"]["active"], 1)

    def test_reuse_port_on_one_side_only_is_refused(self):
        with WstraceServer() as a:
            StartupErrors.expect_refused(
                self, ["--reuse-port", "--listen", f"127.0.0.1:{a.port}", "--admin", "off"],
                "--listen", code=1)
        with WstraceServer("--reuse-port") as a:
            StartupErrors.expect_refused(
                self, ["--listen", f"127.0.0.1:{a.port}", "--admin", "off"], "--listen", code=1)

    def test_processes_started_with_reuse_port_share_it(self):
        with WstraceServer("--reuse-port") as a, \
                WstraceServer("--reuse-port", listen=f"127.0.0.1:{a.port}") as b:
            self.assertEqual(a.port, b.port)
            clients = []
            for _ in range(64):
                c = RawClient(a.port)
                self.addCleanup(c.close)
                c.handshake()
                clients.append(c)
            # The kernel hashes each new connection to one of the four
            # listening sockets (two per process): both get some.
            na = a.wait_stats(lambda s: s["connections"]["active"] > 0,
                              what="connections on the first process")["connections"]["active"]
            nb = b.wait_stats(lambda s: s["connections"]["active"] > 0,
                              what="connections on the second process")["connections"]["active"]
            self.assertEqual(na + nb, 64)

    def test_a_second_process_on_the_admin_port_is_refused(self):
        with WstraceServer() as a:
            err = StartupErrors.expect_refused(
                self, ["--listen", "127.0.0.1:0", "--admin", f"127.0.0.1:{a.admin_port}"],
                "--admin", code=1)
            self.assertIn("--admin off", err, "the message should say what to do")
            # Even with --reuse-port: each node's admin API answers for that node.
            StartupErrors.expect_refused(
                self, ["--reuse-port", "--listen", "127.0.0.1:0",
                       "--admin", f"127.0.0.1:{a.admin_port}"], "--admin", code=1)


class Reload(AsyncTestCase):

    def reloaded(self, srv, count):
        """Waits for the count-th "configuration reloaded" line; returns it."""
        seen = []

        def nth(j):
            if j.get("msg") == "configuration reloaded (SIGHUP)":
                seen.append(j)
            return len(seen) >= count

        line = srv.wait_log(nth, 10)
        self.assertIsNotNone(line, f"no reload #{count} logged after SIGHUP")
        return line

    async def test_sighup_reloads_the_log_level_and_keeps_serving(self):
        path = config_file(self, 'log-level = "info"\n')
        with WstraceServer("--config", path) as srv:
            old = await ws_connect(srv.url())
            quiet = RawClient(srv.port)
            self.addCleanup(quiet.close)
            quiet.handshake()
            quiet.send_json({"type": "Ping", "id": "before"})
            self.assertEqual(quiet.read_json()["id"], "before")  # its upgrade was handled

            rewrite(path, 'log-level = "debug"\n')
            srv.signal(signal.SIGHUP)
            line = self.reloaded(srv, 1)
            self.assertEqual(line["applied"], "log-level")
            self.assertEqual(line["log_level"], "debug")
            self.assertTrue(srv.running(), "SIGHUP stopped the server")
            # Debug lines now: a new connection is logged...
            loud = RawClient(srv.port)
            self.addCleanup(loud.close)
            loud.handshake()
            port = loud.sock.getsockname()[1]
            opened = srv.wait_log(lambda j: j.get("msg") == "connection open"
                                  and j.get("peer", "").endswith(f":{port}"), 10)
            self.assertIsNotNone(opened, "no debug line after the reload to debug")
            # ...and none was for the one opened before it, at info.
            qport = quiet.sock.getsockname()[1]
            self.assertFalse([j for j in srv.log_lines() if j.get("msg") == "connection open"
                              and j.get("peer", "").endswith(f":{qport}")])
            # The client connected before the reload is untouched.
            self.assertEqual(await request(old, {"type": "Ping", "id": 2}),
                             {"type": "Pong", "id": 2})
            srv.signal(signal.SIGTERM)
            await asyncio.wait_for(old.wait_closed(), 20)
            self.assertEqual(old.close_code, 1001)
        self.assertEqual(srv.returncode, 0)

    async def test_a_bad_config_is_refused_and_the_old_one_kept(self):
        path = config_file(self, 'log-level = "info"\n')
        with WstraceServer("--config", path) as srv:
            rewrite(path, 'log-level = "loud"\n')
            srv.signal(signal.SIGHUP)
            refused = srv.wait_log(lambda j: j.get("msg", "").startswith("reload refused"), 10)
            self.assertIsNotNone(refused, "a bad config on SIGHUP was not reported")
            self.assertIn("log-level", refused["error"])
            self.assertEqual(refused["level"], "error")
            # Still serving, still at info: a new connection logs nothing.
            c = RawClient(srv.port)
            self.addCleanup(c.close)
            c.handshake()
            c.send_json({"type": "Ping", "id": 1})
            self.assertEqual(c.read_json(), {"type": "Pong", "id": 1})
            self.assertFalse([j for j in srv.log_lines() if j.get("level") == "debug"])
            # A syntax error is refused the same way.
            rewrite(path, 'log-level = \n')
            srv.signal(signal.SIGHUP)
            self.assertIsNotNone(srv.wait_log(
                lambda j: j.get("msg", "").startswith("reload refused")
                and "line 1" in j.get("error", ""), 10))
            self.assertTrue(srv.running())

    def test_changes_that_need_a_restart_are_named(self):
        path = config_file(self, 'log-level = "info"\nmax-subscriptions = 100\n')
        with WstraceServer("--config", path) as srv:
            rewrite(path, 'log-level = "warn"\nmax-subscriptions = 5\n')
            srv.signal(signal.SIGHUP)
            # Logged even though the new level hides info lines.
            line = self.reloaded(srv, 1)
            self.assertEqual(line["applied"], "log-level")
            warn = srv.wait_log(lambda j: "only a restart applies" in j.get("msg", ""), 10)
            self.assertIsNotNone(warn)
            self.assertEqual(warn["options"], "max-subscriptions")
            # Not applied: 6 subscriptions still work.
            c = RawClient(srv.port)
            self.addCleanup(c.close)
            c.handshake()
            for i in range(6):
                c.send_json({"type": "Subscribe", "channel": f"c{i}"})
                self.assertEqual(c.read_json()["type"], "Subscribed")


if __name__ == "__main__":
    unittest.main()
