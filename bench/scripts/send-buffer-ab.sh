#!/bin/bash
# What capping the client sockets' kernel send buffer (--send-buffer, 128KiB by
# default) costs on fan-out: the fan-out section's runs (1 -> 1K and 1 -> 10K,
# 64-byte content, --rate 0 --window 64) against a server started with
# --send-buffer 0 (kernel autotuning, up to tcp_wmem's maximum) and with each
# SIZE given, interleaved (A B A B ...) so that drift in the machine's load falls
# on both alike. REPEATS rounds (default 5); prints the median and the range of
# deliveries/s and of server CPU per delivery.
#
#   bench/scripts/send-buffer-ab.sh                 # 0 vs 128KiB, builds build-bench
#   REPEATS=7 bench/scripts/send-buffer-ab.sh 64KiB 128KiB
#
# Takes ~REPEATS x sizes x 25 s.
set -eu
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
B=${BUILD:-$ROOT/build-bench}
PY=/usr/bin/python3
REPEATS=${REPEATS:-5}
SIZES=("0" "${@:-128KiB}")
cmake -S "$ROOT" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE="-O2 -g -DNDEBUG" -DWSTRACE_TESTS=OFF >/dev/null
ninja -C "$B" -j "${JOBS:-2}" wstrace wstrace-bench >/dev/null

WORK=$(mktemp -d /tmp/wstrace-sndbuf.XXXXXX)
SPID=""
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# run SIZE SUBSCRIBERS -> one JSON result line appended to $WORK/SIZE.SUBS
run() {
  local size=$1 subs=$2 port=""
  "$B/wstrace" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --threads 2 --send-buffer "$size" \
    >"$WORK/server.log" 2>&1 &
  SPID=$!
  for _ in $(seq 200); do
    port=$(grep -soE '(^| )port=[0-9]+' "$WORK/server.log" | head -1 | cut -d= -f2 || true)
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "server did not start:"; cat "$WORK/server.log"; exit 1; } >&2
  "$B/wstrace-bench" fanout --target "127.0.0.1:$port" --subscribers "$subs" --publishers 1 \
    --rate 0 --window 64 --duration 5s --warmup 2s --procs 2 --server-pid "$SPID" \
    --quiet --json >>"$WORK/$size.$subs" 2>/dev/null || echo '{}' >>"$WORK/$size.$subs"
  kill "$SPID"; wait "$SPID" 2>/dev/null || true
  SPID=""
}

for r in $(seq "$REPEATS"); do
  for subs in 1000 10000; do
    for size in "${SIZES[@]}"; do
      printf '\rround %d/%d: 1 -> %d, --send-buffer %s      ' "$r" "$REPEATS" "$subs" "$size" >&2
      run "$size" "$subs"
    done
  done
done
printf '\r%60s\r' '' >&2

$PY - "$WORK" "${SIZES[@]}" <<'PY'
import json, statistics, sys
work, sizes = sys.argv[1], sys.argv[2:]
print(f"{'run':<10} {'--send-buffer':<14} {'deliveries/s (median, range)':<34} "
      f"{'ns CPU/delivery':<22} ok")
for subs in (1000, 10000):
    for size in sizes:
        rows = [json.loads(l) for l in open(f"{work}/{size}.{subs}") if l.strip()]
        good = [r for r in rows if r.get("correct")]
        def col(k):
            v = [r[k] for r in good]
            return (statistics.median(v), min(v), max(v)) if v else (0, 0, 0)
        d, c = col("deliveries_per_s"), col("server_cpu_ns_per_delivery")
        print(f"1 -> {subs // 1000}K{'':<4} {size or '0':<14} "
              f"{d[0] / 1e6:6.2f} M/s ({d[1] / 1e6:.2f}-{d[2] / 1e6:.2f}){'':<13} "
              f"{c[0]:5.1f} ({c[1]:.1f}-{c[2]:.1f}){'':<6} {len(good)}/{len(rows)}")
PY
