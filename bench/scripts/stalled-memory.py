#!/usr/bin/python3
"""Memory held for subscribers that stop reading: userland queue and the
kernel's socket buffers.

    bench/scripts/stalled-memory.py [--bin build/wstrace] [--subscribers 50]
        [--per-subscriber 8MiB] [--message 4KiB] [-- extra wstrace args]

Starts wstrace on free loopback ports, connects N raw subscribers with a
small receive buffer (8 KiB, so the client side holds little) that subscribe
to one channel and never read, and one publisher that sends messages until
every subscriber has been offered --per-subscriber bytes. Then it reports,
per stalled subscriber:

  kernel_send_queue  the server socket's unsent bytes in the kernel
                     (`ss -tm`: skmem w = wmem_queued, averaged over the
                     server-side sockets of stalled subscribers)
  kernel_tcp_mem     growth of /proc/net/sockstat "TCP mem" (pages, all TCP
                     sockets of the machine: both ends of the loopback)
  server_rss         growth of the server's VmRSS
  closed_4429        how many subscribers were closed as slow consumers

Run it once with the defaults and once with e.g. `-- --send-buffer 0` to see
what capping SO_SNDBUF saves. Every wait is bounded; the server is stopped
by pid.
"""

import argparse
import base64
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def size(text):
    m = re.fullmatch(r"(\d+)\s*(B|KiB|MiB|GiB)?", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text}")
    return int(m.group(1)) * {None: 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m.group(2)]


def frame(payload):
    head = bytes([0x81])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + b"\0\0\0\0" + payload  # zero mask key: payload unchanged


def connect(port, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("no upgrade response")
        buf += chunk
    if b" 101 " not in buf.split(b"\r\n", 1)[0]:
        raise RuntimeError(buf[:200])
    return s, buf.split(b"\r\n\r\n", 1)[1]


def read_frame(s, buf):
    while True:
        if len(buf) >= 2:
            n = buf[1] & 0x7F
            off = 2
            if n == 126 and len(buf) >= 4:
                n, off = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127 and len(buf) >= 10:
                n, off = struct.unpack("!Q", buf[2:10])[0], 10
            if n < 126 or off > 2:
                if len(buf) >= off + n:
                    return buf[0] & 0x0F, buf[off:off + n], buf[off + n:]
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        buf += chunk


def sockstat_pages():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                return int(parts[parts.index("mem") + 1])
    return 0


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def server_send_queues(port, client_ports):
    """wmem_queued of the server-side sockets whose peer is one of client_ports
    (any TCP state: a socket closed after 4429 may still hold its data)."""
    out = subprocess.run(["ss", "-tmnH", f"( sport = :{port} )"],
                         capture_output=True, text=True, timeout=10).stdout
    queues = []
    pattern = re.compile(r"127\.0\.0\.1:%d\s+127\.0\.0\.1:(\d+)\s+skmem:\(([^)]*)\)" % port)
    for m in pattern.finditer(" ".join(out.split())):
        if int(m.group(1)) not in client_ports:
            continue
        kv = {}
        for part in m.group(2).split(","):
            key = re.match(r"[a-z]+", part).group(0)
            kv[key] = int(part[len(key):])
        queues.append(kv.get("w", 0))
    return queues


def admin_stats(admin_port):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/api/stats", timeout=10) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "wstrace"))
    ap.add_argument("--subscribers", type=int, default=50)
    ap.add_argument("--per-subscriber", type=size, default=size("8MiB"))
    ap.add_argument("--message", type=size, default=size("4KiB"))
    ap.add_argument("server_args", nargs="*")
    a = ap.parse_args()

    proc = subprocess.Popen([a.bin, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                             "--log-format", "json", "--threads", "2"] + a.server_args,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("msg") == "wstrace listening":
                port = int(j["port"])
                admin_port = int(j["admin_port"])
        if port is None:
            sys.exit("wstrace did not start")
        # Keep reading its stderr so the server never blocks on a full pipe.
        import threading
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()

        base_pages = sockstat_pages()
        base_rss = rss_kib(proc.pid)
        subs = []
        for _ in range(a.subscribers):
            s, rest = connect(port, rcvbuf=8192)
            s.sendall(frame(b'{"type":"Subscribe","channel":"stall"}'))
            op, payload, rest = read_frame(s, rest)
            assert b"Subscribed" in payload, payload
            subs.append(s)
        client_ports = {s.getsockname()[1] for s in subs}
        pub, rest = connect(port)
        content = "x" * max(1, a.message - 60)
        msg = frame(json.dumps({"type": "Message", "channel": "stall", "content": content}).encode())
        count = (a.per_subscriber + len(msg) - 1) // len(msg)
        batch = 64
        t0 = time.monotonic()
        for i in range(0, count, batch):
            pub.sendall(msg * min(batch, count - i))
        # The publisher's Ping answered: the server handled every message.
        pub.sendall(frame(b'{"type":"Ping","id":"end"}'))
        while True:
            op, payload, rest = read_frame(pub, rest)
            if b'"end"' in payload:
                break
        elapsed = time.monotonic() - t0
        # The other worker thread may still be delivering: wait until the
        # slow-consumer count stops moving (bounded).
        settle_end = time.monotonic() + 10
        last, stable_since = -1, time.monotonic()
        while time.monotonic() < settle_end:
            n = admin_stats(admin_port)["slow_consumer_disconnects_total"]
            if n != last:
                last, stable_since = n, time.monotonic()
            elif n >= len(subs) or time.monotonic() - stable_since > 0.5:
                break
            time.sleep(0.05)
        queues = server_send_queues(port, client_ports)
        pages = sockstat_pages()
        rss = rss_kib(proc.pid)
        closed = admin_stats(admin_port)["slow_consumer_disconnects_total"]
        n = len(subs)
        avg_q = sum(queues) / len(queues) if queues else 0.0
        report = {
            "subscribers": n,
            "offered_per_subscriber_bytes": count * len(msg),
            "flood_seconds": round(elapsed, 2),
            "server_args": a.server_args,
            "kernel_send_queue_per_subscriber_bytes": int(avg_q),
            "server_sockets_seen": len(queues),
            "kernel_tcp_mem_per_subscriber_bytes": int((pages - base_pages) * 4096 / n),
            "server_rss_per_subscriber_bytes": int((rss - base_rss) * 1024 / n),
            "closed_4429": closed,
        }
        print(json.dumps(report, indent=2))
        for s in subs:
            s.close()
        pub.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()
