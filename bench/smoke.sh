#!/usr/bin/env bash
# CI smoke run of wstrace-bench (ctest label "bench"): starts wstrace on port 0,
# runs every scenario for about a second with small N and checks correctness
# only — wstrace-bench exits 0 when nothing was lost, duplicated, reordered or
# dropped. No timing is asserted anywhere.
# Usage: bench/smoke.sh path/to/wstrace path/to/wstrace-bench
set -uo pipefail
server=$1
bench=$2
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# start NAME ARGS...: starts a server, sets $port
start() {
  local name=$1
  shift
  "$server" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --threads 2 "$@" 2>"$tmp/$name.log" &
  pids+=($!)
  port=""
  for _ in $(seq 1 100); do
    port=$(grep -oE '(^| )port=[0-9]+' "$tmp/$name.log" | head -1 | cut -d= -f2)
    [ -n "$port" ] && return 0
    sleep 0.1
  done
  echo "server $name did not start:"
  cat "$tmp/$name.log"
  exit 1
}

passed=0
failed=0
check() {
  local name=$1
  shift
  if "$bench" "$@" --quiet --json >"$tmp/out.json" 2>"$tmp/err.txt"; then
    echo "ok    $name"
    passed=$((passed + 1))
  else
    echo "FAIL  $name (exit $?): $bench $*"
    cat "$tmp/out.json" "$tmp/err.txt"
    failed=$((failed + 1))
  fi
}

start plain
plain=$port
start deflate --compression on
deflate=$port
t=(--target "127.0.0.1:$plain")
check connect connect "${t[@]}" --connections 200 --rate 2000 --duration 1s
check connect-subscribed connect "${t[@]}" --connections 200 --subscribe --channels 5 --duration 1s
check fanout-window fanout "${t[@]}" --subscribers 60 --publishers 3 --channels 2 --duration 1s --warmup 200ms --procs 2
check fanout-paced fanout "${t[@]}" --subscribers 20 --rate 500 --duration 1s --warmup 200ms --message-size 300
check fanout-laggard fanout "${t[@]}" --subscribers 20 --laggards 1 --duration 1s --warmup 200ms
check fanout-deflate fanout --target "127.0.0.1:$deflate" --compression on --subscribers 20 --duration 1s --warmup 200ms
check churn churn "${t[@]}" --connections 10 --channels 3 --duration 1s
echo "bench smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
