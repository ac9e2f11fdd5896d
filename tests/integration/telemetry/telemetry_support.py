"""Helpers for the telemetry end-to-end tests (tests/integration/telemetry).

Reuses tests/integration/python/wstrace_harness.py (the server, admin
helpers, raw frames) and adds:

- OtlpReceiver: tests/integration/otlp/receiver.js as a child process. It
  decodes OTLP/HTTP with the generated code of
  @opentelemetry/otlp-transformer 0.216.0 (nothing written here), and
  writes one JSON line per request.
- Export: what the receiver decoded, as spans (attributes flattened) and
  metric points, with lookups by name, id and attribute.
- Prometheus: a real Debian prometheus server scraping wstrace's /metrics.
- run_main(): the unittest entry point; exits 77 (ctest SKIP_RETURN_CODE)
  when a prerequisite is missing.

Every wait is on a condition with a deadline; nothing sleeps to synchronise.
A wait that loops has one deadline for the whole loop and fails with a
message naming what did not happen (see Deadline in wstrace_harness).
Every process started here is stopped by its pid.
"""

import ctypes
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(INTEGRATION, "python"))

import wstrace_harness  # noqa: E402  (path set just above)
from wstrace_harness import IO_TIMEOUT, START_TIMEOUT, STOP_TIMEOUT, wait_until  # noqa: E402

OTLP_DIR = os.path.join(INTEGRATION, "otlp")
RECEIVER_JS = os.path.join(OTLP_DIR, "receiver.js")

SKIP = 77

# OTLP enums (opentelemetry/proto/trace/v1/trace.proto).
KIND_INTERNAL, KIND_SERVER, KIND_CLIENT, KIND_PRODUCER, KIND_CONSUMER = 1, 2, 3, 4, 5
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
FLAG_SAMPLED = 0x01
FLAG_HAS_IS_REMOTE = 0x100
FLAG_IS_REMOTE = 0x200


def _child_setup(_unused=None):
    """preexec_fn for helper processes: they die with the test process
    (PR_SET_PDEATHSIG), so a killed test leaves nothing behind."""
    def setup():
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    return setup


# -- prerequisites ------------------------------------------------------------

def missing_prerequisites(node=False, prometheus=False):
    """Reasons the tests cannot run here (empty when they can)."""
    why = []
    try:
        import websockets  # noqa: F401
    except ImportError:
        why.append(f"{sys.executable} cannot import websockets (Debian python3-websockets)")
    if node:
        if shutil.which("node") is None:
            why.append("node is not installed")
        if not os.path.isdir(os.path.join(OTLP_DIR, "node_modules", "@opentelemetry",
                                          "otlp-transformer")):
            why.append(f"run 'npm ci' in {OTLP_DIR}")
    if prometheus:
        for tool in ("prometheus", "promtool"):
            if shutil.which(tool) is None:
                why.append(f"{tool} is not installed (Debian package prometheus)")
    return why


def run_main(node=False, prometheus=False):
    """unittest.main() that exits 77 when a prerequisite is missing."""
    binary = os.environ.get("WSTRACE_BIN", "")
    if not os.access(binary, os.X_OK):
        print(f"WSTRACE_BIN={binary!r} is not an executable")
        sys.exit(1)
    why = missing_prerequisites(node=node, prometheus=prometheus)
    if why:
        print("SKIP: " + "; ".join(why))
        sys.exit(SKIP)
    # The tests set every OTEL_* variable they rely on; none is inherited.
    for k in [k for k in os.environ if k.startswith("OTEL_")]:
        del os.environ[k]
    unittest.main(verbosity=2)


# -- small utilities ----------------------------------------------------------

def tmpdir(test, prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    test.addCleanup(shutil.rmtree, d, True)
    return d


def traceparent(trace_id, span_id, flags="01"):
    return f"00-{trace_id}-{span_id}-{flags}"


def random_ids():
    """A fresh (trace id, span id) pair in lowercase hex."""
    return os.urandom(16).hex(), os.urandom(8).hex()


def wstrace_version():
    out = subprocess.run([wstrace_harness.wstrace_bin(), "--version"], capture_output=True,
                         text=True, timeout=30).stdout.strip()
    return out.split()[-1]


def free_port():
    """A port that was free a moment ago (for tools that cannot take port 0;
    callers retry on a collision)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def refused_port(test):
    """A loopback port where connections are refused, reserved for the
    test's lifetime (bound, never listening), so no parallel test can start
    listening on it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    test.addCleanup(s.close)
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


# A client that never answers Pings is closed with 4408 once --client-timeout
# has passed (at most 2 s, 8 heartbeats of 250 ms, in these tests). 40 Pings
# or 15 s without that Close mean it is not coming.
HEARTBEAT_MAX_PINGS = 40
HEARTBEAT_CLOSE_WAIT = 15.0


def pings_until_4408(c):
    """Reads a RawClient's frames without answering the Pings until the
    server's Close, which must be 4408; returns how many Pings came first."""
    pings, code = c.pings_until_close(timeout=HEARTBEAT_CLOSE_WAIT,
                                      max_pings=HEARTBEAT_MAX_PINGS,
                                      hint="is --client-timeout enforced?")
    assert code == 4408, f"closed with {code} after {pings} Pings, expected 4408"
    return pings


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def stop_pid(proc, timeout=STOP_TIMEOUT):
    """SIGTERM by pid, SIGKILL after `timeout`; returns the exit code."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


# -- the OTLP receiver ---------------------------------------------------------

class OtlpReceiver:
    """node receiver.js --port 0 --out FILE [--fail-first N]."""

    def __init__(self, directory, fail_first=0):
        self.out = os.path.join(directory, "otlp.jsonl")
        self.fail_first = fail_first
        self.proc = None
        self.port = None
        self._stderr = os.path.join(directory, "receiver.stderr")

    def start(self):
        cmd = ["node", RECEIVER_JS, "--port", "0", "--out", self.out]
        if self.fail_first:
            cmd += ["--fail-first", str(self.fail_first)]
        with open(self._stderr, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, preexec_fn=_child_setup(None))
        deadline = time.monotonic() + START_TIMEOUT
        line = b""
        fd = self.proc.stdout.fileno()
        while b"\n" not in line:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                break
            chunk = os.read(fd, 256)
            if not chunk:
                break
            line += chunk
        text = line.decode("utf-8", "replace").strip()
        if not text.startswith("LISTENING "):
            self.stop()
            raise AssertionError(f"receiver did not start: {text!r}; stderr: {self.stderr()}")
        self.port = int(text.split()[1])
        return self

    def stderr(self):
        try:
            with open(self._stderr, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def lines(self):
        if not os.path.exists(self.out):
            return []
        with open(self.out) as f:
            text = f.read()
        # Only whole lines: the last one may still be being written.
        return [json.loads(raw) for raw in text.split("\n")[:-1] if raw.strip()]

    def export(self):
        return Export(self.lines())

    def stop(self):
        if self.proc is None:
            return None
        rc = stop_pid(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


# -- decoded exports -----------------------------------------------------------

def any_value(v):
    """An OTLP AnyValue as decoded by protobufjs (64-bit ints as strings)."""
    if v is None:
        return None
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "arrayValue" in v:
        return [any_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return attrs(v["kvlistValue"].get("values", []))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def attrs(kvs):
    out = {}
    for kv in kvs or []:
        if kv["key"] in out:
            raise AssertionError(f"attribute {kv['key']} repeated: {kvs}")
        out[kv["key"]] = any_value(kv.get("value"))
    return out


class Span:
    """One decoded span, with attributes, events and links flattened."""

    def __init__(self, raw, resource, scope):
        self.raw = raw
        self.resource = resource
        self.scope = scope
        self.trace_id = raw.get("traceId", "")
        self.span_id = raw.get("spanId", "")
        self.parent_span_id = raw.get("parentSpanId", "")
        self.name = raw.get("name", "")
        self.kind = int(raw.get("kind", 0))
        self.start = int(raw.get("startTimeUnixNano", "0"))
        self.end = int(raw.get("endTimeUnixNano", "0"))
        self.attributes = attrs(raw.get("attributes"))
        self.events = [{"name": e.get("name", ""), "time": int(e.get("timeUnixNano", "0")),
                        "attributes": attrs(e.get("attributes"))} for e in raw.get("events", [])]
        self.links = [{"trace_id": ln.get("traceId", ""), "span_id": ln.get("spanId", ""),
                       "attributes": attrs(ln.get("attributes"))} for ln in raw.get("links", [])]
        status = raw.get("status") or {}
        self.status_code = int(status.get("code", 0))
        self.status_message = status.get("message", "")
        self.flags = int(raw.get("flags", 0))

    def attr(self, key, default=None):
        return self.attributes.get(key, default)

    def event_names(self):
        return [e["name"] for e in self.events]

    def __repr__(self):
        return (f"Span({self.name} kind={self.kind} trace={self.trace_id} span={self.span_id} "
                f"parent={self.parent_span_id or '-'} attrs={self.attributes} "
                f"events={self.event_names()} links={self.links} status={self.status_code})")


class Export:
    """Everything the receiver decoded."""

    def __init__(self, lines):
        self.lines = lines
        self.errors = [ln for ln in lines if "error" in ln]
        self.trace_requests = [ln for ln in lines if ln.get("signal") == "traces" and "request" in ln]
        self.metric_requests = [ln for ln in lines if ln.get("signal") == "metrics" and "request" in ln]
        self.spans = []
        self.span_resources = []
        for req in self.trace_requests:
            for rs in req["request"].get("resourceSpans", []):
                resource = attrs((rs.get("resource") or {}).get("attributes"))
                self.span_resources.append(resource)
                for ss in rs.get("scopeSpans", []):
                    scope = ss.get("scope") or {}
                    for raw in ss.get("spans", []):
                        self.spans.append(Span(raw, resource, scope))

    # spans
    def named(self, name, **attributes):
        return [s for s in self.spans if s.name == name
                and all(s.attributes.get(k) == v for k, v in attributes.items())]

    def in_trace(self, trace_id):
        return [s for s in self.spans if s.trace_id == trace_id]

    def by_id(self, span_id):
        found = [s for s in self.spans if s.span_id == span_id]
        if len(found) != 1:
            raise AssertionError(f"{len(found)} spans with id {span_id}")
        return found[0]

    def children(self, parent, name=None):
        return [s for s in self.spans if s.parent_span_id == parent.span_id
                and s.trace_id == parent.trace_id and (name is None or s.name == name)]

    def one(self, name, **attributes):
        found = self.named(name, **attributes)
        if len(found) != 1:
            raise AssertionError(f"expected one {name} {attributes}, found {len(found)}: {found}")
        return found[0]

    # metrics
    def metric_resources(self):
        out = []
        for req in self.metric_requests:
            for rm in req["request"].get("resourceMetrics", []):
                out.append(attrs((rm.get("resource") or {}).get("attributes")))
        return out

    def last_metrics(self):
        """name -> metric of the last metrics request (cumulative: the final
        export at shutdown when the server was stopped)."""
        if not self.metric_requests:
            raise AssertionError("no metrics request was received")
        return metrics_by_name(self.metric_requests[-1])


def metrics_by_name(request_line):
    out = {}
    for rm in request_line["request"].get("resourceMetrics", []):
        for sm in rm.get("scopeMetrics", []):
            for m in sm.get("metrics", []):
                out[m["name"]] = m
    return out


def metric_points(metric):
    for kind in ("sum", "gauge", "histogram", "exponentialHistogram", "summary"):
        if kind in metric:
            return kind, metric[kind].get("dataPoints", [])
    raise AssertionError(f"metric without data: {metric}")


def point_value(p):
    if "asInt" in p:
        return int(p["asInt"])
    if "asDouble" in p:
        return float(p["asDouble"])
    if "count" in p:
        return int(p["count"])
    return 0


def metric_value(metrics, name, **labels):
    """Sum over the points of `name` whose attributes include `labels`
    (histograms: their counts). None when the metric is absent."""
    m = metrics.get(name)
    if m is None:
        return None
    _, points = metric_points(m)
    total = 0
    for p in points:
        a = attrs(p.get("attributes"))
        if all(a.get(k) == v for k, v in labels.items()):
            total += point_value(p)
    return total


# -- Prometheus ------------------------------------------------------------------

class Prometheus:
    """A real prometheus server scraping one target every second, with its
    data and config in `directory`. Stopped by pid."""

    def __init__(self, directory, target, job="wstrace"):
        self.directory = directory
        self.target = target
        self.job = job
        self.proc = None
        self.port = None
        self.log_path = os.path.join(directory, "prometheus.log")

    def _config(self):
        path = os.path.join(self.directory, "prometheus.yml")
        with open(path, "w") as f:
            f.write("global:\n"
                    "  scrape_interval: 1s\n"
                    "  scrape_timeout: 1s\n"
                    "  evaluation_interval: 1s\n"
                    "scrape_configs:\n"
                    f"  - job_name: {self.job}\n"
                    "    metrics_path: /metrics\n"
                    "    static_configs:\n"
                    f"      - targets: ['{self.target}']\n")
        return path

    def start(self, attempts=5):
        config = self._config()
        for _ in range(attempts):
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [shutil.which("prometheus"), f"--config.file={config}",
                     f"--storage.tsdb.path={os.path.join(self.directory, 'data')}",
                     f"--web.listen-address=127.0.0.1:{self.port}",
                     "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.directory,
                    preexec_fn=_child_setup(None))
            try:
                wait_until(lambda: self.proc.poll() is not None or self._ready(), START_TIMEOUT,
                           what="prometheus /-/ready")
            except AssertionError:
                self.stop()
                raise
            if self.proc.poll() is None:
                return self
            # Most likely the port was taken between free_port() and bind: retry.
        raise AssertionError("prometheus did not start:\n" + self.log())

    def _ready(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def query(self, expr):
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?"
               + urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=IO_TIMEOUT) as r:
            body = json.loads(r.read().decode())
        if body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body}")
        return body["data"]["result"]

    def targets(self):
        url = f"http://127.0.0.1:{self.port}/api/v1/targets"
        with urllib.request.urlopen(url, timeout=IO_TIMEOUT) as r:
            return json.loads(r.read().decode())["data"]["activeTargets"]

    def stop(self):
        if self.proc is not None:
            return stop_pid(self.proc)
        return None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


# -- a server exporting to a receiver ----------------------------------------------

class ExportingServer:
    """A receiver, and a wstrace exporting to it (traces and metrics, short
    batch delay and export interval).

        with ExportingServer(test, "--heartbeat-interval", "100ms",
                             env={"OTEL_TRACES_SAMPLER": "always_off"}) as es:
            ... es.srv.port ...
        export = es.export   # after the block: SIGTERM, exit code 0, decoded
    """

    def __init__(self, test, *args, env=None, threads=2, protocol="http/protobuf",
                 fail_first=0):
        self.test = test
        self.args = args
        self.env = dict(env or {})
        self.threads = threads
        self.protocol = protocol
        self.fail_first = fail_first
        self.receiver = None
        self.srv = None
        self.export = None

    def __enter__(self):
        d = tmpdir(self.test, "wstrace-tel-")
        self.receiver = OtlpReceiver(d, fail_first=self.fail_first).start()
        self.test.addCleanup(self.receiver.stop)
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": self.receiver.endpoint,
               "OTEL_EXPORTER_OTLP_PROTOCOL": self.protocol,
               "OTEL_BSP_SCHEDULE_DELAY": "100",
               "OTEL_METRIC_EXPORT_INTERVAL": "500"}
        env.update(self.env)
        self.srv = wstrace_harness.WstraceServer(*self.args, threads=self.threads, env=env)
        self.srv.start()
        self.test.addCleanup(self.srv.kill)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            print(self.srv.stderr_text()[-6000:])
            self.srv.kill()
            return False
        rc = self.srv.stop()
        if rc != 0:
            raise AssertionError(f"wstrace exited with {rc}:\n" + self.srv.stderr_text()[-6000:])
        self.receiver.stop()
        self.export = self.receiver.export()
        if self.export.errors:
            raise AssertionError(f"the receiver could not decode: {self.export.errors}")
        return False
