#!/bin/bash
# Two servers (or one server with two settings) side by side on the fan-out
# benchmark: the fan-out section's runs of bench/run (1 -> 1K and 1 -> 10K,
# 64-byte content, --rate 0 --window 64, --procs 2), each variant on a fresh
# server, interleaved (A B A B ...) so that drift in the machine's load falls
# on both alike. Prints the median and the range of deliveries/s and of
# server CPU per delivery over ROUNDS rounds (default 5).
#
#   bench/scripts/ab.sh "LABEL=BINARY [wstrace args]" "LABEL=BINARY [wstrace args]"
#
#   # what --send-buffer's cap costs
#   bench/scripts/ab.sh "autotuning=build-bench/wstrace --send-buffer 0" \
#                       "128KiB=build-bench/wstrace --send-buffer 128KiB"
#   # a build of another commit against this one
#   git worktree add /tmp/old OLD && cmake -S /tmp/old -B /tmp/old/b -G Ninja \
#     -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -g -DNDEBUG" && ninja -C /tmp/old/b wstrace
#   bench/scripts/ab.sh "before=/tmp/old/b/wstrace" "after=build-bench/wstrace"
#
# Builds wstrace-bench in build-bench (BUILD) if needed. SUBS ("1000 10000")
# are the fan-out sizes; a run takes ~12 s (1K) to ~20 s (10K).
set -eu
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
B=${BUILD:-$ROOT/build-bench}
PY=/usr/bin/python3
ROUNDS=${ROUNDS:-5}
SUBS=${SUBS:-"1000 10000"}
[ $# -eq 2 ] || { sed -n 2,20p "$0"; exit 2; }
cmake -S "$ROOT" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE="-O2 -g -DNDEBUG" -DWSTRACE_TESTS=OFF >/dev/null
ninja -C "$B" -j "${JOBS:-2}" wstrace wstrace-bench >/dev/null

WORK=$(mktemp -d /tmp/wstrace-ab.XXXXXX)
SPID=""
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# run N SPEC SUBSCRIBERS: one JSON result line appended to $WORK/N.SUBSCRIBERS
run() {
  local n=$1 spec=$2 subs=$3 port=""
  local cmd=${spec#*=}
  # shellcheck disable=SC2086  # the spec is a command line
  $cmd --listen 127.0.0.1:0 --admin 127.0.0.1:0 --threads 2 >"$WORK/server.log" 2>&1 &
  SPID=$!
  for _ in $(seq 200); do
    port=$(grep -soE '(^| )port=[0-9]+' "$WORK/server.log" | head -1 | cut -d= -f2 || true)
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "server did not start: $cmd"; cat "$WORK/server.log"; exit 1; } >&2
  "$B/wstrace-bench" fanout --target "127.0.0.1:$port" --subscribers "$subs" --publishers 1 \
    --rate 0 --window 64 --duration 5s --warmup 2s --procs 2 --server-pid "$SPID" \
    --quiet --json >>"$WORK/$n.$subs" 2>/dev/null || echo '{}' >>"$WORK/$n.$subs"
  kill "$SPID"; wait "$SPID" 2>/dev/null || true
  SPID=""
}

for r in $(seq "$ROUNDS"); do
  for subs in $SUBS; do
    for n in 1 2; do
      spec=${!n}
      printf '\rround %d/%d: 1 -> %d, %s          ' "$r" "$ROUNDS" "$subs" "${spec%%=*}" >&2
      run "$n" "$spec" "$subs"
    done
  done
done
printf '\r%70s\r' '' >&2

$PY - "$WORK" "$SUBS" "${1%%=*}" "${2%%=*}" <<'PY'
import json, statistics, sys
work, subs, labels = sys.argv[1], [int(s) for s in sys.argv[2].split()], sys.argv[3:]
print(f"{'run':<9} {'variant':<14} {'deliveries/s: median (range)':<32} "
      f"{'ns server CPU/delivery':<24} correct")
for n in subs:
    for i, label in enumerate(labels, 1):
        rows = [json.loads(l) for l in open(f"{work}/{i}.{n}") if l.strip()]
        good = [r for r in rows if r.get("correct")]
        def col(k):
            v = [r[k] for r in good]
            return (statistics.median(v), min(v), max(v)) if v else (0, 0, 0)
        d, c = col("deliveries_per_s"), col("server_cpu_ns_per_delivery")
        name = f"1 -> {n // 1000}K" if n % 1000 == 0 else f"1 -> {n}"
        print(f"{name:<9} {label:<14} {d[0] / 1e6:6.2f} M/s ({d[1] / 1e6:.2f}-{d[2] / 1e6:.2f})"
              f"{'':<10} {c[0]:6.1f} ({c[1]:.1f}-{c[2]:.1f}){'':<7} {len(good)}/{len(rows)}")
PY
