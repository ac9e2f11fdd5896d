#!/bin/bash
# The cost of telemetry in server instructions, counted by callgrind (the VM
# has no hardware counters): the same paced fan-out (1 -> 100 subscribers,
# 100 msg/s, so every message is fanned out on its own and batching does not
# vary between runs) with nothing (a build with metric recording compiled out,
# and the SDK disabled), tracing off (metrics still recorded), metrics only,
# metrics + 1% sampling and metrics + 100% sampling. Each mode runs for 4 s
# and for 12 s; the difference of the two is the steady state (start-up,
# connections and shutdown cancel out), per delivery. REPEATS runs of each
# (default 3), median. One worker thread: how the connections fall on two
# threads varies from run to run and moves the count more than telemetry does.
#
#   bench/scripts/telemetry-cost.sh              # builds what it needs
#   BUILD=build-x BUILD_NOMETRICS=build-y bench/scripts/telemetry-cost.sh   # other build dirs
#
# Prints one line per mode: deliveries, instructions, instructions/delivery
# and the change against "nothing". Takes ~10 minutes.
set -eu
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
B=${BUILD:-$ROOT/build-tcost}
BN=${BUILD_NOMETRICS:-$ROOT/build-tcost-nometrics}
PY=/usr/bin/python3
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 2; }

build() {  # dir, extra cmake args: both builds with bench/run's flags
  local dir=$1; shift
  cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS_RELEASE="-O2 -g -DNDEBUG" -DWSTRACE_TESTS=OFF "$@" >/dev/null
  ninja -C "$dir" -j "${JOBS:-2}" wstrace wstrace-bench >/dev/null
}
build "$B"
build "$BN" -DWSTRACE_MEASURE_WITHOUT_METRICS=ON

WORK=$(mktemp -d /tmp/wstrace-tcost.XXXXXX)
SPID=""
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

REPEATS=${REPEATS:-3}
# run MODE SECONDS -> "deliveries instructions"
run() {
  local mode=$1 secs=$2 bin=$B/wstrace E
  case $mode in
    nothing) bin=$BN/wstrace; E="OTEL_SDK_DISABLED=true";;
    tracing_off) E="OTEL_SDK_DISABLED=true";;
    metrics_only) E="OTEL_TRACES_SAMPLER=always_off";;
    ratio1) E="OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.01";;
    full) E="OTEL_TRACES_SAMPLER=always_on";;
  esac
  rm -f "$WORK"/cg.out.* "$WORK"/server.log
  # shellcheck disable=SC2086  # E is a list of VAR=value words
  env $E valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out.%p" "$bin" \
    --listen 127.0.0.1:0 --admin 127.0.0.1:0 --threads 1 >"$WORK/server.log" 2>&1 &
  SPID=$!
  local port=""
  for _ in $(seq 300); do
    port=$(grep -soE '(^| )port=[0-9]+' "$WORK/server.log" | head -1 | cut -d= -f2 || true)
    [ -n "$port" ] && break
    sleep 0.2
  done
  [ -n "$port" ] || { echo "server did not start:"; cat "$WORK/server.log"; exit 1; } >&2
  local out d i
  out=$("$B/wstrace-bench" fanout --target "127.0.0.1:$port" --subscribers 100 --publishers 1 \
    --rate 100 --duration "${secs}s" --warmup 1s --procs 1 --quiet --json --drain-timeout 20s \
    --handshake-timeout 30s 2>/dev/null || true)
  d=$(echo "$out" | $PY -c 'import json,sys; print(json.load(sys.stdin).get("deliveries",0))' 2>/dev/null || echo 0)
  kill "$SPID"; wait "$SPID" 2>/dev/null || true
  SPID=""
  i=$(callgrind_annotate "$WORK"/cg.out.* 2>/dev/null | grep -m1 "PROGRAM TOTALS" | awk '{gsub(",","",$1); print $1}' || true)
  echo "$d ${i:-0}"
}

base=""
for mode in nothing tracing_off metrics_only ratio1 full; do
  vals=()
  for _ in $(seq "$REPEATS"); do
    read -r d1 i1 < <(run "$mode" 4)
    read -r d2 i2 < <(run "$mode" 12)
    vals+=("$($PY -c "print(($i2-$i1)/($d2-$d1) if $d2>$d1 else 0)")")
  done
  per=$($PY -c 'import statistics,sys; print(round(statistics.median(map(float, sys.argv[1:])), 1))' "${vals[@]}")
  [ -z "$base" ] && base=$per
  echo "$mode per_delivery=$per runs=[${vals[*]}] vs_nothing=$($PY -c "print(f'{($per/$base-1)*100:+.1f}%' if $base else '')")"
done
