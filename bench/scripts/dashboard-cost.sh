#!/bin/bash
# What the dashboard costs the server: the 1 -> 1K fan-out benchmark (as in
# bench/run: 64-byte content, --rate 0 --window 64, --procs 2, 10 s) on a
# fresh server, with no page open and with the overview open in headless
# Chromium (its live charts fed one sample per second over SSE),
# interleaved over ROUNDS rounds (default 5). Prints, per variant, the
# median and range of deliveries/s, server CPU per delivery, and the CPU of
# the server's admin thread (ws-admin: the page's requests and its event
# stream) and sampler thread (ws-sampler: the per-second sample, taken with
# or without a page) in ms per second of the run.
#
#   bench/scripts/dashboard-cost.sh
#   VIEW='#/connections' bench/scripts/dashboard-cost.sh   # another page open
#
# The connections page asks the workers for a page of rows when it is
# shown; the channels page every 2 s.
#
# Chromium runs on the same two cores as the server and the load
# generator, so deliveries/s with the page open also pay for the browser.
set -eu
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
B=${BUILD:-$ROOT/build-bench}
PY=/usr/bin/python3
ROUNDS=${ROUNDS:-5}
SUBS=${SUBS:-1000}
DURATION=${DURATION:-10s}
command -v node >/dev/null || { echo "node is needed (Node 20)" >&2; exit 2; }
[ -d "$ROOT/tests/integration/node/node_modules/playwright-core" ] ||
  { echo "playwright-core missing: run scripts/setup.sh --test" >&2; exit 2; }
cmake -S "$ROOT" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE="-O2 -g -DNDEBUG" -DWSTRACE_TESTS=OFF >/dev/null
ninja -C "$B" -j "${JOBS:-2}" wstrace wstrace-bench >/dev/null

WORK=$(mktemp -d /tmp/wstrace-dash.XXXXXX)
SPID="" PAGE=""
cleanup() {
  [ -n "$PAGE" ] && kill "$PAGE" 2>/dev/null
  [ -n "$SPID" ] && kill "$SPID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# thread_ns PID NAME: the CPU time (ns, from schedstat) of the server's thread NAME
thread_ns() {
  local t
  for t in /proc/"$1"/task/*; do
    if [ "$(cat "$t/comm" 2>/dev/null)" = "$2" ]; then
      awk '{ print $1 }' "$t/schedstat"
      return
    fi
  done
  echo 0
}

# run VARIANT: one JSON line appended to $WORK/VARIANT
run() {
  local variant=$1 port="" admin=""
  "$B/wstrace" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --threads 2 >"$WORK/server.log" 2>&1 &
  SPID=$!
  for _ in $(seq 200); do
    port=$(grep -soE ' port=[0-9]+' "$WORK/server.log" | head -1 | cut -d= -f2 || true)
    admin=$(grep -soE 'admin_port=[0-9]+' "$WORK/server.log" | head -1 | cut -d= -f2 || true)
    [ -n "$port" ] && [ -n "$admin" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "server did not start"; cat "$WORK/server.log"; exit 1; } >&2
  if [ "$variant" = open ]; then
    node "$ROOT/bench/scripts/dashboard-page.mjs" --url "http://127.0.0.1:$admin/" --hash "${VIEW:-}" \
      --seconds 120 \
      >"$WORK/page.log" 2>&1 &
    PAGE=$!
    for _ in $(seq 400); do grep -q READY "$WORK/page.log" && break; sleep 0.05; done
    grep -q READY "$WORK/page.log" || { echo "the page did not open"; cat "$WORK/page.log"; exit 1; } >&2
  fi
  local a0 s0 t0 a1 s1 t1
  a0=$(thread_ns "$SPID" ws-admin) s0=$(thread_ns "$SPID" ws-sampler) t0=$(date +%s%N)
  "$B/wstrace-bench" fanout --target "127.0.0.1:$port" --subscribers "$SUBS" --publishers 1 \
    --rate 0 --window 64 --duration "$DURATION" --warmup 2s --procs 2 --server-pid "$SPID" \
    --quiet --json >"$WORK/result" 2>/dev/null || echo '{}' >"$WORK/result"
  a1=$(thread_ns "$SPID" ws-admin) s1=$(thread_ns "$SPID" ws-sampler) t1=$(date +%s%N)
  $PY - "$WORK/result" "$((a1 - a0))" "$((s1 - s0))" "$((t1 - t0))" \
    >>"$WORK/$variant" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
admin, sampler, ns = (int(x) for x in sys.argv[2:])
r["admin_ms_per_s"] = admin / 1e6 / (ns / 1e9)
r["sampler_ms_per_s"] = sampler / 1e6 / (ns / 1e9)
print(json.dumps(r))
PY
  if [ -n "$PAGE" ]; then kill "$PAGE"; wait "$PAGE" 2>/dev/null || true; PAGE=""; fi
  kill "$SPID"; wait "$SPID" 2>/dev/null || true
  SPID=""
}

for r in $(seq "$ROUNDS"); do
  for variant in closed open; do
    printf '\rround %d/%d: 1 -> %d, page %s          ' "$r" "$ROUNDS" "$SUBS" "$variant" >&2
    run "$variant"
  done
done
printf '\r%70s\r' '' >&2

$PY - "$WORK" <<'PY'
import json, statistics, sys
work = sys.argv[1]
print(f"{'page':<7} {'deliveries/s':<22} {'ns server CPU/delivery':<24} "
      f"{'ws-admin ms/s':<18} {'ws-sampler ms/s':<18} correct")
for variant in ("closed", "open"):
    rows = [json.loads(l) for l in open(f"{work}/{variant}") if l.strip()]
    good = [r for r in rows if r.get("correct")]
    def col(k, scale=1):
        v = [r[k] / scale for r in good]
        return f"{statistics.median(v):.3g} ({min(v):.3g}-{max(v):.3g})" if v else "-"
    print(f"{variant:<7} {col('deliveries_per_s', 1e6) + ' M':<22} "
          f"{col('server_cpu_ns_per_delivery'):<24} {col('admin_ms_per_s'):<18} "
          f"{col('sampler_ms_per_s'):<18} {len(good)}/{len(rows)}")
PY
