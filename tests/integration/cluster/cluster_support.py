"""Helpers for the cluster (Redis Pub/Sub scale-out) integration tests.

Builds on tests/integration/python/wstrace_harness.py (imported, not
edited): a redis-server of our own on a free port (started, killed with
SIGKILL, restarted on the same port, always by pid), a tiny RESP client to
ask it PUBSUB questions, wstrace nodes joined to it, websocket clients, the
OTLP receiver, and condition waits with deadlines (never sleeps as
synchronisation).
"""

import asyncio
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

from wstrace_harness import (IO_TIMEOUT, START_TIMEOUT, Positions, WstraceServer,  # noqa: E402
                             check_subscribed, recv_json, wait_until, ws_connect)

OTLP_DIR = os.path.join(HERE, "..", "otlp")
PREFIX = "wstrace:"  # --redis-prefix wstrace: channel C is the Redis channel "wstrace:{C}"


def redis_channel(channel, prefix=PREFIX):
    """The Redis Pub/Sub channel of wstrace channel `channel`: PREFIX{channel}
    (the braces: a Redis Cluster hash tag shared with its :meta and :hist keys)."""
    return f"{prefix}{{{channel}}}"


def wstrace_channel(name, prefix=PREFIX):
    """The wstrace channel of a Redis channel name PREFIX{C}; anything else
    under the prefix comes back as "?<name>" (it matches no wstrace channel)."""
    if name.startswith(prefix + "{") and name.endswith("}") and len(name) > len(prefix) + 2:
        return name[len(prefix) + 1:-1]
    return "?" + name


def redis_server_bin():
    return os.environ.get("REDIS_SERVER", shutil.which("redis-server") or "/usr/bin/redis-server")


def free_port():
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# -- Redis ---------------------------------------------------------------------

class RespError(Exception):
    pass


class RespClient:
    """A blocking RESP2 client: enough for PING and PUBSUB."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def command(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._read()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("redis closed the connection")
                self.buf += chunk
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RespError(f"unexpected reply {line!r}")


class RedisServer:
    """A redis-server on a free loopback port, no persistence.

    kill9() crashes it (SIGKILL, by pid); start() again brings it back on
    the same port. Logs go to a file in its own temporary directory.
    """

    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="wstrace-redis-")
        self.proc = None
        self.log = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout=START_TIMEOUT):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [redis_server_bin(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
             "--protected-mode", "no"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}:\n"
                                     + self.log_text()[-4000:])
            return self.command("PING") == "PONG"

        wait_until(ready, timeout, what=f"redis-server on port {self.port}")
        return self

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.log:
            self.log.close()
            self.log = None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.log:
            self.log.close()
            self.log = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "redis.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def command(self, *args):
        c = RespClient(self.port)
        try:
            return c.command(*args)
        finally:
            c.close()

    def channels(self):
        """The wstrace channels Redis has at least one subscriber for (a
        Redis channel under the prefix not of the form PREFIX{C} shows as
        "?<name>"; the control plane's PREFIX__control and PREFIX__reply:<node>
        are left out)."""
        return {wstrace_channel(c) for c in self.command("PUBSUB", "CHANNELS", PREFIX + "*")
                if not c.startswith(PREFIX + "__")}  # the control plane's own channels

    def numsub(self, *channels):
        """{channel: number of Redis subscribers (one per interested node)}."""
        if not channels:
            return {}
        r = self.command("PUBSUB", "NUMSUB", *[redis_channel(c) for c in channels])
        return {wstrace_channel(r[i]): int(r[i + 1]) for i in range(0, len(r), 2)}

    def subscriber_clients(self):
        """CLIENT LIST entries (dicts) of the connections that hold subscriptions."""
        out = []
        for line in self.command("CLIENT", "LIST").splitlines():
            fields = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
            if int(fields.get("sub", "0")) > 0:
                out.append(fields)
        return out


# -- nodes ---------------------------------------------------------------------

def node(redis_url, node_id, *args, threads=2, env=None, expect_clean_exit=True):
    """A wstrace node (not started) joined to the cluster at redis_url."""
    return WstraceServer("--redis", redis_url, "--node-id", node_id, *args, threads=threads,
                         env=env, expect_clean_exit=expect_clean_exit)


def cluster_stats(srv):
    return srv.stats()["cluster"]


def metric(srv, name, **labels):
    v = srv.metrics().value(name, **labels)
    return 0.0 if v is None else v


def wait_link(srv, up=True, timeout=IO_TIMEOUT):
    return srv.wait_stats(lambda s: s["cluster"]["link_up"] is up, timeout,
                          what=f"cluster link_up={up} on {srv.args}")


def local_interest(srv):
    """Channels with local subscribers, from /api/channels."""
    status, body = srv.admin_get("/api/channels")
    assert status == 200, status
    doc = json.loads(body)
    items = doc.get("channels", doc) if isinstance(doc, dict) else doc
    names = set()
    for it in items:
        if isinstance(it, dict):
            if it.get("subscribers", 1) > 0:
                names.add(it.get("name") or it.get("channel"))
        else:
            names.add(it)
    return names


def wait_redis_matches(redis, nodes_interest, timeout=IO_TIMEOUT, what="subscriptions"):
    """Waits until Redis has exactly one subscriber per interested node for
    every channel, no other wstrace channel, and each node's
    /api/stats redis_subscriptions equals the size of its interest.

    nodes_interest: [(srv, set_of_channels)]."""
    want = {}
    for _, chans in nodes_interest:
        for c in chans:
            want[c] = want.get(c, 0) + 1
    state = {}

    def check():
        chans = redis.channels()
        nums = redis.numsub(*sorted(set(want) | chans))
        per_node = [cluster_stats(srv)["redis_subscriptions"] for srv, _ in nodes_interest]
        state.update(channels=chans, numsub=nums, per_node=per_node)
        return (chans == set(want) and all(nums.get(c, 0) == n for c, n in want.items())
                and all(nums.get(c, 0) == 0 for c in chans - set(want))
                and per_node == [len(ch) for _, ch in nodes_interest])

    try:
        wait_until(check, timeout, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}: want numsub {want}, node subscriptions "
                             f"{[len(c) for _, c in nodes_interest]}; last seen {state}") from None


# -- clients -------------------------------------------------------------------

async def connect_many(url, n, **kw):
    out = []
    for i in range(0, n, 50):
        out += await asyncio.gather(*(ws_connect(url, **kw) for _ in range(min(50, n - i))))
    return out


def positions(ws):
    """The Positions (wstrace_harness) of a websockets client: its epoch and
    last offset per channel, from its Subscribed replies, Messages and Gaps.
    The Gaps it got are in gaps(ws)."""
    p = getattr(ws, "wstrace_positions", None)
    if p is None:
        p = Positions(f"client {ws.local_address[1] if ws.local_address else id(ws)}")
        ws.wstrace_positions = p
        ws.wstrace_gaps = []
    return p


def gaps(ws):
    """Every Gap notice the client got so far (each already checked against
    its positions by next_message())."""
    positions(ws)
    return ws.wstrace_gaps


async def next_reply(ws, timeout=IO_TIMEOUT, what="a reply"):
    """The client's next message that is not a Gap notice: Gaps (pushed at
    any time in a cluster whose Redis lost a stream) are checked against
    its positions and kept in gaps(ws)."""
    pos = positions(ws)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        m = await recv_json(ws, max(left, 0.001), what=what)
        if isinstance(m, dict) and m.get("type") == "Gap":
            ws.wstrace_gaps.append(pos.gap(m))
            continue
        return m


async def subscribe_all(ws, channels, timeout=IO_TIMEOUT):
    """Subscribes ws to every channel (pipelined) and waits for each reply:
    a Subscribed (checked: epoch, offset) per channel, in any order (a
    channel's position may come from the cluster, after the others').
    Returns {channel: Subscribed reply}; an Error fails."""
    pos = positions(ws)
    for ch in channels:
        await ws.send(json.dumps({"type": "Subscribe", "channel": ch}))
    pending = list(channels)
    replies = {}
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        r = await next_reply(ws, max(left, 0.001),
                             what=f"Subscribed for {pending[:3]} ({len(pending)} left)")
        ch = r.get("channel") if isinstance(r, dict) else None
        assert r.get("type") == "Subscribed" and ch in pending, \
            f"expected Subscribed for one of {pending[:5]}, got {r}"
        replies[ch] = pos.subscribed(check_subscribed(r, ch))
        pending.remove(ch)
    return replies


async def unsubscribe_all(ws, channels, timeout=IO_TIMEOUT):
    pos = positions(ws)
    for ch in channels:
        await ws.send(json.dumps({"type": "Unsubscribe", "channel": ch}))
    for ch in channels:
        r = await next_reply(ws, timeout, what=f"Unsubscribed for {ch}")
        assert r == {"type": "Unsubscribed", "channel": ch}, r
        pos.unsubscribed(ch)


async def next_message(ws, timeout=IO_TIMEOUT, what="a Message"):
    """The client's next Message, checked as its channel's next position
    (positions(ws)); Gap notices before it are checked and kept in
    gaps(ws). Anything else fails."""
    pos = positions(ws)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        m = await recv_json(ws, max(left, 0.001), what=what)
        if isinstance(m, dict) and m.get("type") == "Gap":
            ws.wstrace_gaps.append(pos.gap(m))
            continue
        assert isinstance(m, dict) and m.get("type") == "Message", f"{what}: got {m}"
        return pos.message(m)


async def publish(ws, channel, content, traceparent=None):
    m = {"type": "Message", "channel": channel, "content": content}
    if traceparent:
        m["traceparent"] = traceparent
    await ws.send(json.dumps(m))


async def close_all(wss):
    await asyncio.gather(*(ws.close() for ws in wss), return_exceptions=True)


async def read_until(ws, want, what="", timeout=IO_TIMEOUT):
    """Reads Messages until every content in `want` (a set of (channel,
    content)) has arrived; returns the list of (channel, content) read, in
    order, including any extra. Each Message is checked as its channel's
    next position (next_message())."""
    pending = set(want)
    seen = []
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{what}: still waiting for {sorted(pending)[:5]} "
                                 f"({len(pending)} left); got {seen[-5:]}")
        try:
            m = await next_message(ws, left, what)
        except asyncio.TimeoutError:
            raise AssertionError(f"{what}: timed out waiting for {sorted(pending)[:5]} "
                                 f"({len(pending)} left); got {seen[-5:]}") from None
        key = (m["channel"], m["content"])
        seen.append(key)
        pending.discard(key)
    return seen


# -- OTLP receiver ---------------------------------------------------------------

def otlp_available():
    return (shutil.which("node") is not None and
            os.path.isdir(os.path.join(OTLP_DIR, "node_modules", "@opentelemetry",
                                       "otlp-transformer")))


class OtlpReceiver:
    """tests/integration/otlp/receiver.js on a free port, output in a file."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wstrace-otlp-")
        self.out = os.path.join(self.dir, "otlp.jsonl")
        self.proc = None
        self.port = None

    def __enter__(self):
        self.proc = subprocess.Popen(["node", os.path.join(OTLP_DIR, "receiver.js"), "--port", "0",
                                      "--out", self.out], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)
        result = {}

        def read_port():
            line = self.proc.stdout.readline().decode()
            result["line"] = line

        t = threading.Thread(target=read_port, daemon=True)
        t.start()
        t.join(START_TIMEOUT)
        line = result.get("line", "")
        if not line.startswith("LISTENING "):
            self.__exit__()
            raise AssertionError(f"OTLP receiver did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def requests(self):
        out = []
        try:
            with open(self.out) as f:
                for line in f:
                    line = line.strip()
                    if line:
                        try:
                            out.append(json.loads(line))
                        except ValueError:
                            pass  # a line being written
        except FileNotFoundError:
            pass
        return out

    def spans(self):
        """Every decoded span as (resource attributes dict, span dict)."""
        out = []
        for req in self.requests():
            if req.get("signal") != "traces":
                continue
            if "error" in req:
                raise AssertionError(f"receiver could not decode an export: {req['error']}")
            for rs in req["request"].get("resourceSpans", []):
                res = attrs((rs.get("resource") or {}).get("attributes", []))
                for ss in rs.get("scopeSpans", []):
                    for sp in ss.get("spans", []):
                        out.append((res, sp))
        return out


def attr_value(v):
    if v is None:
        return None
    for k in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if k in v:
            return int(v[k]) if k == "intValue" else v[k]
    if "arrayValue" in v:
        return [attr_value(x) for x in v["arrayValue"].get("values", [])]
    return v


def attrs(lst):
    return {a["key"]: attr_value(a.get("value")) for a in lst or []}


# -- delivery rounds -------------------------------------------------------------

async def delivery_round(publishers, receivers, tag, count):
    """One checked exchange.

    publishers: [(name, ws, channels)] -- each sends f"{name}:{tag}:{seq}" for
      seq in range(count) to each of its channels, then "...:done".
    receivers: [(label, ws, expected)] -- expected is the set of
      (channel, publisher name) it must get; it must get each publisher's
      messages exactly once, in order, and nothing else, each at its
      channel's next offset (next_message()).
    Then a fence round (see test_cluster_delivery): every publisher sends
    "...:fence" to its channels once every receiver has everything, and each
    receiver must get the fences with nothing in between -- a late
    duplicate would show up before them.
    """
    async def send_all(name, ws, channels):
        for seq in range(count):
            for ch in channels:
                await publish(ws, ch, f"{name}:{tag}:{seq}")
        for ch in channels:
            await publish(ws, ch, f"{name}:{tag}:done")

    async def collect(label, ws, expected):
        got = {}
        pending = set(expected)
        deadline = time.monotonic() + IO_TIMEOUT
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{label} ({tag}): no done from {sorted(pending)}; got "
                                     f"{ {k: len(v) for k, v in got.items()} }")
            m = await next_message(ws, left, f"{label} ({tag})")
            pub, t, seq = m["content"].split(":", 2)
            key = (m["channel"], pub)
            assert t == tag and key in expected, f"{label} ({tag}): unexpected message {m}"
            if seq == "done":
                assert key in pending, f"{label} ({tag}): duplicate done {key}"
                pending.discard(key)
            else:
                got.setdefault(key, []).append(int(seq))
        for key in expected:
            assert got.get(key) == list(range(count)), \
                f"{label} ({tag}) {key}: not exactly once in order: {got.get(key)}"

    await asyncio.gather(*(collect(*r) for r in receivers), *(send_all(*p) for p in publishers))

    async def fences(label, ws, expected):
        want = {(ch, f"{pub}:{tag}:fence") for ch, pub in expected}
        seen = await read_until(ws, want, f"{label} ({tag} fence)")
        extra = [k for k in seen if k not in want]
        assert not extra and len(seen) == len(want), \
            f"{label} ({tag}): delivered more than once: {extra[:10] or seen}"

    async def send_fences(name, ws, channels):
        for ch in channels:
            await publish(ws, ch, f"{name}:{tag}:fence")

    await asyncio.gather(*(fences(*r) for r in receivers), *(send_fences(*p) for p in publishers))
    return count + 2  # publications per (publisher, channel)


# -- TCP proxies in front of Redis ---------------------------------------------

def _shut(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Proxy:
    """A TCP proxy to 127.0.0.1:upstream_port on a free port: each accepted
    client gets its own upstream connection, handed to _attach(client,
    upstream), which starts the threads that move the bytes. drop_all()
    closes every proxied connection."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs = []  # (client socket, upstream socket)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.pairs.append((c, u))
            self._attach(c, u)

    def _attach(self, client, upstream):
        raise NotImplementedError

    @staticmethod
    def _pump(src, dst, before_send=None):
        """Copies src to dst until either ends; before_send(data) runs first
        for each chunk."""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if before_send:
                    before_send(data)
                dst.sendall(data)
        except OSError:
            pass
        _shut(src, dst)

    def release(self):
        pass

    def drop_all(self):
        with self.lock:
            pairs = list(self.pairs)
        for c, u in pairs:
            _shut(c, u)

    def close(self):
        self.release()
        self.sock.close()
        self.drop_all()
        with self.lock:
            for c, u in self.pairs:
                c.close()
                u.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class StallingProxy(_Proxy):
    """hold() stops forwarding what clients send (kept, forwarded after
    release()), so a node can be connected to "Redis" without Redis having
    seen a byte. Counts accepted connections and bytes received from clients
    per connection."""

    def __init__(self, upstream_port):
        self.released = threading.Event()
        self.released.set()
        self.client_bytes = []  # per accepted connection, bytes received from the client
        super().__init__(upstream_port)

    def _attach(self, client, upstream):
        with self.lock:
            idx = len(self.client_bytes)
            self.client_bytes.append(0)

        def count_and_wait(data):
            with self.lock:
                self.client_bytes[idx] += len(data)
            self.released.wait()

        threading.Thread(target=self._pump, args=(client, upstream, count_and_wait),
                         daemon=True).start()
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def hold(self):
        self.released.clear()

    def release(self):
        self.released.set()

    def accepted(self):
        with self.lock:
            return len(self.pairs)

    def bytes_from_client(self, idx):
        with self.lock:
            return self.client_bytes[idx]


# -- a proxy that holds chosen Redis commands ------------------------------------

def _resp_command(buf):
    """(command as bytes, its arguments) if buf starts with one complete RESP
    command (an array of bulk strings), else None."""
    end = buf.find(b"\r\n")
    if end < 0:
        return None
    if buf[:1] != b"*":
        raise AssertionError(f"not a RESP command: {buf[:40]!r}")
    n = int(buf[1:end])
    pos = end + 2
    args = []
    for _ in range(n):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        assert buf[pos:pos + 1] == b"$", buf[pos:pos + 40]
        size = int(buf[pos + 1:end])
        if len(buf) < end + 2 + size + 2:
            return None
        args.append(buf[end + 2:end + 2 + size])
        pos = end + 2 + size + 2
    return buf[:pos], args


class CommandGate(_Proxy):
    """Reads the RESP commands clients send. hold_at("SUBSCRIBE") makes the
    next connection that sends that command stop forwarding from that command
    on (replies still flow); release() forwards what was held and everything
    after. Every command is recorded, held or not, in the order the gate read
    them, so a test can see what a node has sent that Redis has not seen."""

    def __init__(self, upstream_port):
        self.trigger = None   # command name that starts a hold
        self.conns = []       # dicts: upstream, held (None: forwarding)
        self.log = []         # [command, [args], held] in arrival order
        super().__init__(upstream_port)

    def _attach(self, client, upstream):
        conn = {"upstream": upstream, "held": None}
        with self.lock:
            self.conns.append(conn)
        threading.Thread(target=self._from_client, args=(client, conn), daemon=True).start()
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _from_client(self, client, conn):
        buf = b""
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                buf += data
                while True:
                    parsed = _resp_command(buf)
                    if parsed is None:
                        break
                    raw, args = parsed
                    buf = buf[len(raw):]
                    name = args[0].decode("latin-1").upper() if args else ""
                    with self.lock:
                        if conn["held"] is None and self.trigger == name:
                            self.trigger = None
                            conn["held"] = []
                        self.log.append([name, [a.decode("latin-1") for a in args[1:]],
                                         conn["held"] is not None])
                        if conn["held"] is not None:
                            conn["held"].append(raw)
                        else:
                            conn["upstream"].sendall(raw)
        except OSError:
            pass
        _shut(client, conn["upstream"])

    def hold_at(self, command):
        with self.lock:
            self.trigger = command.upper()

    def commands(self):
        """[(command, [args], held)] every connection sent, in arrival order."""
        with self.lock:
            return [tuple(entry) for entry in self.log]

    def release(self):
        with self.lock:
            self.trigger = None
            for conn in self.conns:
                if conn["held"] is not None:
                    try:
                        for raw in conn["held"]:
                            conn["upstream"].sendall(raw)
                    except OSError:
                        pass
                    conn["held"] = None
            for entry in self.log:
                entry[2] = False
