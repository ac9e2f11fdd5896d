"""Test harness for the wstrace integration tests.

- WstraceServer: starts the binary (path from $WSTRACE_BIN) on free ports,
  reads the ports from its JSON "wstrace listening" log line, keeps its
  stderr, and stops it by pid (SIGTERM, then SIGKILL after a bound).
- Admin helpers: stats() (/api/stats JSON), metrics() (/metrics parsed),
  wait_until() (polls a condition until a deadline; never a fixed sleep).
- RawClient: a blocking TCP client with its own tiny frame writer and
  reader, for what a well-behaved library refuses to send (unmasked frames,
  reserved bits, bad UTF-8, ...) and for reading close codes off the wire.
- Deadline / WaitTimeout: one overall bound for a wait made of many steps.
- Protocol checks: check_subscribed() / check_message() / check_published()
  / check_gap() compare a reply's exact fields (epoch and offset included);
  Positions follows one client's offsets per channel (each Message the next
  one, a Gap skipping exactly what it says).
  subscribe() (websockets) and raw_subscribe() (RawClient) return the
  checked Subscribed reply.

Nothing here sleeps to synchronise: every wait is on an event (a log line,
a frame, a socket close, a counter) with a deadline. Fail, don't hang: a
wait that loops (frames until a Close, data until EOF, messages until a
set is complete) has ONE deadline for the whole loop, not a fresh timeout
per step, so a stream of Pings or data cannot keep it alive; when it runs
out it raises WaitTimeout (an AssertionError) naming what did not happen.
"""

import base64
import ctypes
import hashlib
import hmac
import http.client
import json
import os
import re
import resource
import signal
import socket
import struct
import subprocess
import threading
import time
import zlib

# Generous bounds: the suite also runs against an ASan+UBSan debug build on
# two cores shared with other ctest jobs. They are deadlines, not delays:
# a wait ends as soon as its event happens. IO_TIMEOUT bounds one awaited
# event (a reply, a frame, a close, an /api/stats condition); a loop of
# many steps gets one Deadline for all of them.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
IO_TIMEOUT = 20.0

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

_PR_SET_PDEATHSIG = 1


def wstrace_bin():
    path = os.environ.get("WSTRACE_BIN")
    if not path:
        raise RuntimeError("set WSTRACE_BIN to the wstrace binary")
    return path


def _child_setup(nofile):
    def setup():
        # Die with the test process, so a killed test leaves no server behind.
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except OSError:
            pass
        if nofile is not None:
            # An int sets soft = hard; a (soft, hard) pair sets both.
            limits = tuple(nofile) if isinstance(nofile, (tuple, list)) else (nofile, nofile)
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)

    return setup


class ServerError(AssertionError):
    pass


class WaitTimeout(AssertionError, TimeoutError):
    """A wait ran out of time. An AssertionError, so unittest reports the
    message (what did not happen) as the failure; also a TimeoutError, so
    code that catches timeouts (asyncio.TimeoutError is TimeoutError) still
    does."""


class Deadline:
    """One overall bound for a wait made of many steps.

        d = Deadline(10, "no Close frame")
        while ...:
            f = c.read_frame(deadline=d)    # each step gets what is left

    left() returns the seconds remaining and raises WaitTimeout once there
    are none: "<what> within <seconds> s <detail>"."""

    def __init__(self, seconds, what="the awaited event did not happen"):
        self.seconds = float(seconds)
        self.what = what
        self.end = time.monotonic() + self.seconds

    def expired(self):
        return time.monotonic() >= self.end

    def elapsed(self):
        return time.monotonic() - (self.end - self.seconds)

    def error(self, detail=""):
        return WaitTimeout(f"{self.what} within {self.seconds:g} s"
                           + (f" {detail}" if detail else ""))

    def left(self, detail=""):
        left = self.end - time.monotonic()
        if left <= 0:
            raise self.error(detail)
        return left


class WstraceServer:
    """A wstrace process on free loopback ports.

    with WstraceServer("--compression", "on") as srv:
        srv.port, srv.admin_port, srv.url("/ws"), srv.stats()

    On leaving the block the server is stopped with SIGTERM (SIGKILL after
    STOP_TIMEOUT) and, when expect_clean_exit is true and the block did not
    raise, its exit code must be 0.
    """

    def __init__(self, *args, threads=2, nofile=None, env=None, expect_clean_exit=True,
                 listen="127.0.0.1:0"):
        self.args = list(args)
        self.listen = listen
        self.threads = threads
        self.nofile = nofile
        self.env = env
        self.expect_clean_exit = expect_clean_exit
        self.proc = None
        self.port = None
        self.admin_port = None
        self.returncode = None
        self._lines = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._reader = None
        self._eof = False
        self.killed_after_sigterm = False

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        cmd = [wstrace_bin(), "--listen", self.listen, "--admin", "127.0.0.1:0",
               "--log-format", "json", "--threads", str(self.threads)] + self.args
        env = dict(os.environ)
        # Never export anywhere from the tests.
        for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                  "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
            env.pop(k, None)
        for k in list(env):
            if k.startswith("WSTRACE_") and k != "WSTRACE_BIN":
                env.pop(k)
        if self.env:
            env.update(self.env)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env,
                                     preexec_fn=_child_setup(self.nofile))
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        line = self.wait_log(lambda j: j.get("msg") == "wstrace listening", START_TIMEOUT)
        if line is None:
            self.kill()
            raise ServerError("wstrace did not start:\n" + self.stderr_text())
        self.port = int(line["port"])
        self.admin_port = int(line["admin_port"])
        self.api_port = int(line.get("api_port", 0))  # with --api
        return self

    def _read_stderr(self):
        for raw in self.proc.stderr:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self._lines.append(text)
                self._cond.notify_all()
        self.proc.stderr.close()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        rc = self.stop()
        if exc_type is None and self.expect_clean_exit and rc != 0:
            why = (f"wstrace did not exit within {STOP_TIMEOUT:g} s of SIGTERM (killed)"
                   if self.killed_after_sigterm else f"wstrace exited with {rc}, expected 0")
            raise ServerError(f"{why}; stderr:\n" + self.stderr_text()[-8000:])
        return False

    @property
    def pid(self):
        return self.proc.pid

    def sanitized(self):
        """Whether the server runs with AddressSanitizer (GCC links libasan):
        its redzones and quarantine make RSS say nothing about what the
        server holds, so byte bounds on RSS are checked by the plain build."""
        with open(f"/proc/{self.pid}/maps") as f:
            return any("libasan" in line for line in f)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.running():
            os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout):
        """Waits for the process to end; returns its exit code or None."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._reader is not None:
            self._reader.join(timeout=5)
        return self.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            if self.wait_exit(timeout) is None:
                self.killed_after_sigterm = True
                self.kill()
        else:
            self.wait_exit(timeout)
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise ServerError(f"wstrace (pid {self.proc.pid}) still there {STOP_TIMEOUT:g} s "
                                  "after SIGKILL") from None
            if self._reader is not None:
                self._reader.join(timeout=5)
            self.returncode = self.proc.returncode

    # -- logs --------------------------------------------------------------

    def stderr_text(self):
        with self._lock:
            return "\n".join(self._lines)

    def log_lines(self):
        out = []
        with self._lock:
            lines = list(self._lines)
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def wait_log(self, pred, timeout):
        """Waits for a JSON log line matching pred; returns it or None (at
        the deadline, or at once when the server has exited)."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                while seen < len(self._lines):
                    line = self._lines[seen]
                    seen += 1
                    try:
                        j = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(j, dict) and pred(j):
                        return j
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    return None
                self._cond.wait(left)

    def expect_log(self, pred, timeout=IO_TIMEOUT, what="the awaited log line"):
        """wait_log() that fails (WaitTimeout) with the last lines of the log
        when no line matches within `timeout`."""
        line = self.wait_log(pred, timeout)
        if line is None:
            state = "wstrace has exited" if self._eof else f"no such line within {timeout:g} s"
            raise WaitTimeout(f"no log line {what}: {state}; last lines:\n"
                              + "\n".join(self.stderr_text().splitlines()[-15:]))
        return line

    # -- addresses and admin -----------------------------------------------

    def url(self, path="/ws"):
        return f"ws://127.0.0.1:{self.port}{path}"

    def admin_get(self, path, timeout=IO_TIMEOUT):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def stats(self):
        status, body = self.admin_get("/api/stats")
        if status != 200:
            raise ServerError(f"/api/stats answered {status}")
        return json.loads(body)

    def metrics(self):
        status, body = self.admin_get("/metrics")
        if status != 200:
            raise ServerError(f"/metrics answered {status}")
        return Metrics(body)

    def cpu_ticks(self):
        """utime + stime of the server process, in clock ticks."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2:].split()
        return int(fields[11]) + int(fields[12])

    def connections(self):
        """Every row of /api/connections (up to 1000), oldest first."""
        status, body = self.admin_get("/api/connections?limit=1000")
        if status != 200:
            raise ServerError(f"/api/connections answered {status}")
        return json.loads(body)["connections"]

    def wait_stats(self, pred, timeout=IO_TIMEOUT, what="condition"):
        """Polls /api/stats until pred(stats); fails (WaitTimeout) with the
        last stats seen."""
        last = {}

        def check():
            s = self.stats()
            last["stats"] = s
            return s if pred(s) else None

        try:
            return wait_until(check, timeout, what=f"/api/stats {what}")
        except WaitTimeout as e:
            if "stats" not in last:
                raise
            seen = json.dumps(last["stats"], separators=(",", ":"))
            raise WaitTimeout(f"{e}; last /api/stats: {seen[:1500]}") from None


class Metrics:
    """A parsed Prometheus text exposition."""

    _LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
    _LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

    def __init__(self, text):
        self.text = text
        self.samples = []  # (name, {labels}, value)
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = self._LINE.match(line)
            if not m:
                continue
            labels = dict(self._LABEL.findall(m.group(3) or ""))
            try:
                value = float(m.group(4))
            except ValueError:
                continue
            self.samples.append((m.group(1), labels, value))

    def names(self):
        return {n for n, _, _ in self.samples}

    def value(self, *names, **labels):
        """Sum of the samples of the first of `names` that exists, over the
        series whose labels include `labels`. None when no name exists."""
        for name in names:
            found = [(lb, v) for n, lb, v in self.samples if n == name]
            if not found:
                continue
            return sum(v for lb, v in found if all(lb.get(k) == val for k, val in labels.items()))
        return None


def api_call(srv, method, body=None, key=None, headers=None, http_method="POST",
             timeout=IO_TIMEOUT):
    """(status, parsed JSON answer) of one server API request (--api) on a
    fresh connection: POST /api/v1/<method> with `body` (a dict is sent as
    JSON, str/bytes as they are) and `key` as Authorization: Bearer."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.api_port, timeout=timeout)
    try:
        h = {"Content-Type": "application/json"}
        if key is not None:
            h["Authorization"] = f"Bearer {key}"
        h.update(headers or {})
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        conn.request(http_method, f"/api/v1/{method}", body=data, headers=h)
        r = conn.getresponse()
        text = r.read().decode()
        return r.status, json.loads(text) if text.strip() else None
    finally:
        conn.close()


def wait_until(fn, timeout=IO_TIMEOUT, interval=0.02, what="condition"):
    """Polls fn() until it returns something truthy; returns that. Raises
    WaitTimeout (an AssertionError) at the deadline. A bounded poll, not a
    fixed sleep."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except WaitTimeout:
            raise
        except (OSError, ValueError, http.client.HTTPException) as e:
            last_exc = e
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}"
                              + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


# -- JWT (HS256), for --auth-secret ------------------------------------------

def _b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_jwt(payload, secret):
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64url(json.dumps(payload).encode())
    sig = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64url(sig)}"


# -- raw WebSocket client -----------------------------------------------------

def encode_frame(opcode, payload=b"", fin=True, rsv1=False, rsv2=False, rsv3=False,
                 mask=True, mask_key=None):
    """One frame as bytes. Masked by default, as a client must."""
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0) \
        | (0x10 if rsv3 else 0) | (opcode & 0x0F)
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return head + key + apply_mask(payload, key)


def apply_mask(payload, key):
    if not payload:
        return b""
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def close_payload(code, reason=b""):
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


def deflate_message(data):
    """permessage-deflate payload of one message (RFC 7692 §7.2.1)."""
    c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate_message(data, wbits=15):
    d = zlib.decompressobj(-wbits)
    return d.decompress(data + b"\x00\x00\xff\xff")


class Frame:
    __slots__ = ("fin", "rsv1", "rsv2", "rsv3", "opcode", "masked", "payload")

    def __init__(self, fin, rsv1, rsv2, rsv3, opcode, masked, payload):
        self.fin, self.rsv1, self.rsv2, self.rsv3 = fin, rsv1, rsv2, rsv3
        self.opcode, self.masked, self.payload = opcode, masked, payload

    def close_code(self):
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    def close_reason(self):
        return self.payload[2:].decode("utf-8", "replace")

    def __repr__(self):
        return (f"Frame(op={self.opcode:#x} fin={self.fin} rsv1={self.rsv1} "
                f"len={len(self.payload)} {self.payload[:60]!r})")


class ConnectionEnded(Exception):
    """The peer closed the TCP connection (EOF or reset)."""


class HttpResponse:
    def __init__(self, status, reason, headers, raw):
        self.status, self.reason, self.headers, self.raw = status, reason, headers, raw

    def header(self, name):
        return self.headers.get(name.lower())


def upgrade_request(port, path="/ws", headers=None, key=None, version="13", omit=()):
    """The bytes of an upgrade request; `omit` drops standard headers."""
    key = key or base64.b64encode(os.urandom(16)).decode()
    hdrs = [("Host", f"127.0.0.1:{port}"), ("Upgrade", "websocket"),
            ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Version", version)]
    hdrs = [(k, v) for k, v in hdrs if k not in omit]
    hdrs += list(headers or [])
    lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in hdrs]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawClient:
    """A WebSocket client over a plain socket, for tests.

    c = RawClient(port); resp = c.handshake(); c.send_text('{"type":"Ping"}')
    f = c.read_frame(); code = c.read_close()
    """

    def __init__(self, port, host="127.0.0.1", rcvbuf=None, timeout=IO_TIMEOUT, ssl_context=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connect, so the window is small from the start.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect((host, port))
            if ssl_context is not None:  # wss://: the TLS handshake, then as over TCP
                self.sock = ssl_context.wrap_socket(self.sock, server_hostname="localhost")
        except OSError:
            self.sock.close()
            raise
        self.port = port
        self.timeout = timeout
        self.buf = b""
        self.deflate = False
        self.extensions = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- HTTP ---------------------------------------------------------------

    def send_raw(self, data):
        self.sock.sendall(data)

    def request_bytes(self, path="/ws", headers=None, key=None, version="13", omit=()):
        self.key = key or base64.b64encode(os.urandom(16)).decode()
        return upgrade_request(self.port, path, headers, self.key, version, omit)

    def read_http_response(self, timeout=None):
        """Reads an HTTP response head (and a Content-Length body), all of it
        within `timeout`."""
        d = Deadline(timeout or self.timeout, "no complete HTTP response")
        while b"\r\n\r\n" not in self.buf:
            chunk = self._recv(d, f"({len(self.buf)} bytes of a head read: {self.buf[:80]!r})")
            if not chunk:
                raise ConnectionEnded(f"connection closed before an HTTP response: {self.buf!r}")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            headers[k] = (headers[k] + ", " + v.strip()) if k in headers else v.strip()
        n = int(headers.get("content-length", "0") or 0)
        if status != 101:
            while len(self.buf) < n:
                chunk = self._recv(d, f"({len(self.buf)} of a {n}-byte body read)")
                if not chunk:
                    break
                self.buf += chunk
            body, self.buf = self.buf[:n], self.buf[n:]
        else:
            body = b""
        return HttpResponse(status, parts[2] if len(parts) > 2 else "", headers, head + b"\r\n\r\n" + body)

    def handshake(self, path="/ws", headers=None, expect=101, **kw):
        self.send_raw(self.request_bytes(path, headers, **kw))
        resp = self.read_http_response()
        if expect is not None and resp.status != expect:
            raise AssertionError(f"expected HTTP {expect}, got {resp.status}: {resp.raw!r}")
        if resp.status == 101:
            want = base64.b64encode(hashlib.sha1((self.key + WS_GUID).encode()).digest()).decode()
            if resp.header("sec-websocket-accept") != want:
                raise AssertionError(f"bad Sec-WebSocket-Accept: {resp.headers}")
            self.extensions = resp.header("sec-websocket-extensions")
            self.deflate = bool(self.extensions and "permessage-deflate" in self.extensions)
        return resp

    # -- frames -------------------------------------------------------------

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(encode_frame(opcode, payload, **kw))

    def send_text(self, text, compress=False):
        data = text.encode() if isinstance(text, str) else text
        if compress:
            self.send_frame(OP_TEXT, deflate_message(data), rsv1=True)
        else:
            self.send_frame(OP_TEXT, data)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def send_close(self, code=1000, reason=b""):
        self.send_frame(OP_CLOSE, close_payload(code, reason))

    def _recv(self, deadline, detail="", n=65536):
        """One recv() within what is left of `deadline` (WaitTimeout when
        nothing comes in time); b"" on EOF or reset."""
        self.sock.settimeout(deadline.left(detail))
        try:
            return self.sock.recv(n)
        except ConnectionResetError:
            return b""
        except socket.timeout:
            raise deadline.error(detail) from None
        finally:
            self.sock.settimeout(self.timeout)

    def _need(self, n, deadline, detail=""):
        while len(self.buf) < n:
            chunk = self._recv(deadline, f"({len(self.buf)} of {n} bytes buffered){detail}")
            if not chunk:
                raise ConnectionEnded(f"EOF with {len(self.buf)} of {n} bytes buffered{detail}")
            self.buf += chunk

    def read_frame(self, timeout=None, deadline=None, what="no frame from the server"):
        """Reads one frame, all of it within `timeout` (default: the client's
        timeout) or within what is left of `deadline` (a Deadline shared by
        a loop of reads). Raises ConnectionEnded on EOF/reset and
        WaitTimeout when the frame is not complete in time."""
        d = deadline or Deadline(timeout or self.timeout, what)
        self._need(2, d)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4, d)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10, d)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        masked = bool(b1 & 0x80)
        if masked:
            self._need(off + 4, d)
            key = self.buf[off:off + 4]
            off += 4
        self._need(off + n, d)
        payload = self.buf[off:off + n]
        if masked:
            payload = apply_mask(payload, key)
        self.buf = self.buf[off + n:]
        return Frame(bool(b0 & 0x80), bool(b0 & 0x40), bool(b0 & 0x20), bool(b0 & 0x10),
                     b0 & 0x0F, masked, payload)

    def discard_buffered(self):
        """Drops every complete frame already received (in the kernel
        buffer or ours) without blocking; returns how many were dropped."""
        self.sock.setblocking(False)
        try:
            while True:
                try:
                    chunk = self.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                if not chunk:
                    break
                self.buf += chunk
        finally:
            self.sock.settimeout(self.timeout)
        n = 0
        while True:
            saved = self.buf
            try:
                # Only complete frames: _need() on a partial one would block.
                if not self._complete_frame_buffered():
                    break
                self.read_frame()
                n += 1
            except ConnectionEnded:
                self.buf = saved
                break
        return n

    def _complete_frame_buffered(self):
        b = self.buf
        if len(b) < 2:
            return False
        n, off = b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return False
            n, off = struct.unpack("!H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return False
            n, off = struct.unpack("!Q", b[2:10])[0], 10
        if b[1] & 0x80:
            off += 4
        return len(b) >= off + n

    def read_message(self, timeout=None, answer_pings=True, deadline=None):
        """Reads one data message (reassembled, inflated), all of it within
        `timeout` (or what is left of `deadline`), however many control
        frames come first. Returns (opcode, bytes). Control frames in
        between: Pings are answered."""
        d = deadline or Deadline(timeout or self.timeout, "no data message from the server")
        parts, first, compressed, control = [], None, False, 0
        while True:
            try:
                f = self.read_frame(deadline=d)
            except WaitTimeout:
                if not control:
                    raise
                raise d.error(f"after {control} control frames (Pings, Pongs)") from None
            if f.opcode == OP_PING:
                control += 1
                if answer_pings:
                    self.send_frame(OP_PONG, f.payload)
                continue
            if f.opcode == OP_PONG:
                control += 1
                continue
            if f.opcode == OP_CLOSE:
                raise AssertionError(f"unexpected Close {f.close_code()} {f.close_reason()!r}")
            if first is None:
                first, compressed = f.opcode, f.rsv1
            parts.append(f.payload)
            if f.fin:
                data = b"".join(parts)
                if compressed:
                    data = inflate_message(data)
                return first, data

    def read_json(self, timeout=None, deadline=None):
        op, data = self.read_message(timeout, deadline=deadline)
        assert op == OP_TEXT, f"expected a text frame, got opcode {op}"
        return json.loads(data)

    def read_close(self, timeout=None, skip_data=True, max_pings=None, hint=""):
        """Reads frames until a Close, all within `timeout`; returns (code,
        reason). Data frames and Pings before it are skipped (not answered).
        With max_pings, more Pings than that before the Close fail at once
        (the server's own clock says the Close is overdue). `hint` ends the
        failure message (e.g. "is --client-timeout enforced?")."""
        t = timeout or self.timeout
        d = Deadline(t, "no Close frame")
        pings = data = 0

        def detail():
            return (f"after {pings} Pings and {data} other frames"
                    + (f": {hint}" if hint else ""))

        while True:
            try:
                f = self.read_frame(deadline=d)
            except WaitTimeout:
                raise d.error(detail()) from None
            except ConnectionEnded as e:
                raise ConnectionEnded(f"no Close frame before the TCP close, {detail()} ({e})") \
                    from None
            if f.opcode == OP_CLOSE:
                return f.close_code(), f.close_reason()
            if not skip_data:
                raise AssertionError(f"expected a Close frame, got {f!r}")
            if f.opcode == OP_PING:
                pings += 1
                if max_pings is not None and pings > max_pings:
                    raise WaitTimeout(f"no Close frame after {pings} Pings "
                                      f"(in {d.elapsed():.1f} s)" + (f": {hint}" if hint else ""))
            else:
                data += 1

    def pings_until_close(self, timeout=None, max_pings=None, hint=""):
        """Reads frames without answering Pings until a Close (nothing but
        Pings may come first); returns (pings seen, close code). Fails once
        `timeout` has passed or more than `max_pings` Pings came without a
        Close."""
        d = Deadline(timeout or self.timeout, "no Close frame")
        pings = 0
        tail = f": {hint}" if hint else ""
        while True:
            try:
                f = self.read_frame(deadline=d)
            except WaitTimeout:
                raise d.error(f"after {pings} Pings{tail}") from None
            if f.opcode == OP_PING:
                pings += 1
                if max_pings is not None and pings > max_pings:
                    raise WaitTimeout(f"no Close frame after {pings} Pings "
                                      f"(in {d.elapsed():.1f} s){tail}")
                continue
            assert f.opcode == OP_CLOSE, f"expected a Ping or a Close, got {f!r}"
            return pings, f.close_code()

    def expect_eof(self, timeout=None):
        """The server closes the TCP connection (after its Close frame):
        reads until EOF, ignoring anything else, within `timeout`."""
        d = Deadline(timeout or self.timeout, "the server did not close the TCP connection")
        self.buf = b""
        n = 0
        while True:
            chunk = self._recv(d, f"({n} more bytes read meanwhile)")
            if not chunk:
                return True
            n += len(chunk)


def ws_accept_ok(resp):
    return resp.status == 101


# -- the protocol's replies and streams (docs/PROTOCOL.md) --------------------

_UNSET = object()   # a keyword not given
_ANY = object()     # present, any value


def _same(a, b):
    """Equal as JSON values: 1 and True (or 1 and 1.0) are different ids."""
    return a == b and type(a) is type(b)


def _fields(r, kind, want):
    assert isinstance(r, dict) and r.get("type") == kind, f"expected a {kind}, got {r!r:.300}"
    assert set(r) == set(want), \
        f"{kind} with fields {sorted(r)}, expected exactly {sorted(want)}: {r!r:.300}"


def _position(r):
    assert isinstance(r["epoch"], str) and r["epoch"], f"epoch is not a non-empty string: {r}"
    assert type(r["offset"]) is int and r["offset"] >= 0, f"offset is not an integer >= 0: {r}"


def check_subscribed(r, channel, id=_UNSET, recovered=_UNSET, epoch=None, offset=None):
    """r is the Subscribed reply for `channel`: exactly type, channel, epoch
    (a non-empty string), offset (an integer >= 0, the channel's last
    position), plus id when given (echoed exactly) and "recovered" when given
    (True/False, or _ANY for either; absent otherwise). `epoch` and `offset`,
    when given, must match. Returns r."""
    want = {"type", "channel", "epoch", "offset"}
    if id is not _UNSET:
        want.add("id")
    if recovered is not _UNSET:
        want.add("recovered")
    _fields(r, "Subscribed", want)
    assert r["channel"] == channel, f"Subscribed for {r['channel']!r}, expected {channel!r}"
    _position(r)
    if id is not _UNSET:
        assert _same(r["id"], id), f"id {r['id']!r} not echoed as {id!r}: {r}"
    if recovered is not _UNSET:
        assert isinstance(r["recovered"], bool), r
        if recovered is not _ANY:
            assert r["recovered"] is recovered, f"recovered should be {recovered}: {r}"
    if epoch is not None:
        assert r["epoch"] == epoch, f"epoch {r['epoch']!r}, expected {epoch!r}: {r}"
    if offset is not None:
        assert r["offset"] == offset, f"offset {r['offset']}, expected {offset}: {r}"
    return r


def check_message(m, channel, content=_UNSET, offset=None):
    """m is a delivered Message on `channel`: exactly type, channel, content
    and offset (an integer >= 1), with `content`/`offset` when given."""
    _fields(m, "Message", {"type", "channel", "content", "offset"})
    assert m["channel"] == channel, f"Message on {m['channel']!r}, expected {channel!r}: {m!r:.300}"
    assert type(m["offset"]) is int and m["offset"] >= 1, f"bad offset: {m!r:.300}"
    if content is not _UNSET:
        assert m["content"] == content, f"content {m['content']!r:.100}, expected {content!r:.100}"
    if offset is not None:
        assert m["offset"] == offset, f"offset {m['offset']}, expected {offset}: {m!r:.300}"
    return m


def check_published(r, channel, id, epoch=None, offset=None):
    """r is the Published answer to a Message with `id`: exactly type,
    channel, epoch, offset (>= 1) and the id echoed exactly."""
    _fields(r, "Published", {"type", "channel", "epoch", "offset", "id"})
    assert r["channel"] == channel, f"Published for {r['channel']!r}, expected {channel!r}: {r}"
    _position(r)
    assert r["offset"] >= 1, r
    assert _same(r["id"], id), f"id {r['id']!r} not echoed as {id!r}: {r}"
    if epoch is not None:
        assert r["epoch"] == epoch, f"epoch {r['epoch']!r}, expected {epoch!r}: {r}"
    if offset is not None:
        assert r["offset"] == offset, f"offset {r['offset']}, expected {offset}: {r}"
    return r


def check_gap(g, channel):
    """g is a Gap notice on `channel`: type, channel, epoch, from (>= 1),
    to, and either nothing else or reset: true with previous_epoch."""
    want = {"type", "channel", "epoch", "from", "to"}
    if isinstance(g, dict) and "reset" in g:
        want |= {"reset", "previous_epoch"}
    _fields(g, "Gap", want)
    assert g["channel"] == channel, f"Gap on {g['channel']!r}, expected {channel!r}: {g}"
    assert isinstance(g["epoch"], str) and g["epoch"], g
    assert type(g["from"]) is int and g["from"] >= 1 and type(g["to"]) is int, g
    if "reset" in g:
        assert g["reset"] is True and isinstance(g["previous_epoch"], str) \
            and g["previous_epoch"], g
    return g


class Positions:
    """One client's position in each channel it is subscribed to, from its
    Subscribed replies; message() checks that each delivered Message is its
    channel's next position (offset = last + 1: contiguous, nothing lost,
    nothing twice, one order) and published() that a Published names the
    epoch the client subscribed in.

        pos = Positions()
        pos.subscribed(await subscribe(ws, "a"))
        pos.message(await recv_json(ws), "a", "hello")
    """

    def __init__(self, who="client"):
        self.who = who
        self.epoch = {}
        self.last = {}

    def subscribed(self, r):
        self.epoch[r["channel"]] = r["epoch"]
        self.last[r["channel"]] = r["offset"]
        return r

    def message(self, m, channel=None, content=_UNSET):
        ch = channel if channel is not None else (m.get("channel") if isinstance(m, dict) else None)
        check_message(m, ch, content)
        assert ch in self.last, f"{self.who}: a Message on {ch!r}, not subscribed to it: {m!r:.200}"
        want = self.last[ch] + 1
        assert m["offset"] == want, \
            f"{self.who}: {ch!r} offset {m['offset']}, expected {want} (the last was " \
            f"{self.last[ch]}): {m!r:.200}"
        self.last[ch] = want
        return m

    def published(self, r, channel, id, offset=None):
        return check_published(r, channel, id, epoch=self.epoch.get(channel), offset=offset)

    def unsubscribed(self, channel):
        self.epoch.pop(channel, None)
        self.last.pop(channel, None)

    def gap(self, g, channel=None, reset=None):
        """A Gap notice (cluster only): without "reset", positions last + 1
        .. to of the same epoch are skipped; with "reset", the stream went on
        in a new epoch (previous_epoch must be the one this client was in)
        from position 1, and to may be 0 (nothing of the new epoch lost).
        The next Message has offset to + 1. `reset` (True/False), when
        given, is what the notice must say."""
        ch = channel if channel is not None else (g.get("channel") if isinstance(g, dict) else None)
        check_gap(g, ch)
        assert ch in self.last, f"{self.who}: a Gap on {ch!r}, not subscribed to it: {g}"
        is_reset = g.get("reset", False)
        if reset is not None:
            assert is_reset is reset, f"{self.who}: expected a Gap with reset={reset}: {g}"
        if is_reset:
            assert g["previous_epoch"] == self.epoch[ch], \
                f"{self.who}: reset from epoch {g['previous_epoch']!r}, but it was in " \
                f"{self.epoch[ch]!r}: {g}"
            assert g["epoch"] != self.epoch[ch], f"{self.who}: a reset to the same epoch: {g}"
            assert g["from"] == 1, f"{self.who}: a reset's positions start at 1: {g}"
        else:
            assert g["epoch"] == self.epoch[ch], \
                f"{self.who}: Gap in epoch {g['epoch']!r}, it is in {self.epoch[ch]!r}: {g}"
            assert g["from"] == self.last[ch] + 1 and g["to"] >= g["from"], \
                f"{self.who}: Gap {g['from']}..{g['to']} after offset {self.last[ch]}: {g}"
        self.epoch[ch] = g["epoch"]
        self.last[ch] = g["to"]
        return g


# -- helpers for the websockets library (asyncio) -----------------------------

async def ws_connect(url, **kw):
    """A Python websockets client. No client-side keepalive pings unless
    asked (they would count as activity for the heartbeat tests) and no
    compression unless asked."""
    import websockets

    kw.setdefault("ping_interval", None)
    kw.setdefault("compression", None)
    kw.setdefault("open_timeout", IO_TIMEOUT)
    kw.setdefault("close_timeout", IO_TIMEOUT)
    kw.setdefault("max_size", 16 * 1024 * 1024)
    return await websockets.connect(url, **kw)


async def recv(ws, timeout=IO_TIMEOUT, what="message"):
    """ws.recv() within `timeout`; WaitTimeout naming `what` otherwise."""
    import asyncio

    try:
        return await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        raise WaitTimeout(f"no {what} from the server within {timeout:g} s") from None


async def recv_json(ws, timeout=IO_TIMEOUT, what="message"):
    msg = await recv(ws, timeout, what)
    assert isinstance(msg, str), f"expected a text message, got {msg!r:.80}"
    return json.loads(msg)


async def request(ws, obj, timeout=IO_TIMEOUT):
    """Sends obj and returns the next message (the direct reply)."""
    await ws.send(json.dumps(obj))
    return await recv_json(ws, timeout, what=f"reply to {json.dumps(obj)[:80]}")


async def subscribe(ws, channel, timeout=IO_TIMEOUT, id=_UNSET, since=None, recovered=_UNSET,
                    epoch=None, offset=None):
    """Subscribes and returns the Subscribed reply (the next message), checked
    with check_subscribed(): type, channel, epoch, offset (and id, recovered
    when given; "recovered" is expected exactly when `since` is given)."""
    obj = {"type": "Subscribe", "channel": channel}
    if id is not _UNSET:
        obj["id"] = id
    if since is not None:
        obj["since"] = since
    r = await request(ws, obj, timeout)
    if since is None and recovered is _UNSET:
        return check_subscribed(r, channel, id=id, epoch=epoch, offset=offset)
    if recovered is _UNSET:
        recovered = _ANY
    return check_subscribed(r, channel, id=id, recovered=recovered, epoch=epoch, offset=offset)


async def wait_closed_code(ws, timeout=IO_TIMEOUT):
    """Reads (and drops) messages until the connection closes, within
    `timeout` however many messages come first; returns the close code the
    server sent (None if it sent none)."""
    import asyncio
    import websockets

    read = 0

    async def drain():
        nonlocal read
        try:
            while True:
                await ws.recv()
                read += 1
        except websockets.ConnectionClosed as e:
            return e.rcvd.code if e.rcvd is not None else None

    try:
        return await asyncio.wait_for(drain(), timeout)
    except asyncio.TimeoutError:
        raise WaitTimeout(f"the server did not close the connection within {timeout:g} s "
                          f"({read} messages read meanwhile)") from None


class AsyncTestCase(__import__("unittest").IsolatedAsyncioTestCase):
    """IsolatedAsyncioTestCase runs its loop in debug mode, which records a
    traceback for every callback: far too slow for hundreds of clients."""

    async def asyncSetUp(self):
        import asyncio

        asyncio.get_running_loop().set_debug(False)


def raw_subscribe(c, channel, id=_UNSET, epoch=None, offset=None):
    """Subscribes a RawClient (the next message must be the reply) and
    returns the Subscribed reply, checked with check_subscribed()."""
    obj = {"type": "Subscribe", "channel": channel}
    if id is not _UNSET:
        obj["id"] = id
    c.send_json(obj)
    return check_subscribed(c.read_json(), channel, id=id, epoch=epoch, offset=offset)


def stalled_subscriber(test, port, channel, ssl_context=None):
    """A RawClient subscribed to `channel`, with a 4 KiB receive buffer so
    its socket fills fast, closed when the test ends. It reads only when the
    test reads from it. Its Subscribed reply is in `c.subscribed`."""
    c = RawClient(port, rcvbuf=4096, ssl_context=ssl_context)
    test.addCleanup(c.close)
    c.handshake()
    c.subscribed = raw_subscribe(c, channel)
    return c
