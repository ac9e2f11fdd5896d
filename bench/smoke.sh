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
  "$server" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --threads "${THREADS:-2}" "$@" 2>"$tmp/$name.log" &
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

# Channels with history: subscribers leave, messages are published, they come
# back with `since` and must recover every one of them, in order.
printf '[[channel]]\nmatch = "ch*"\nhistory_size = 100\n' >"$tmp/streams.toml"
start streams --config "$tmp/streams.toml"
check recover recover --target "127.0.0.1:$port" --subscribers 100 --channels 5 --missed 20 --procs 2

# wss:// against a certificate made here (when openssl is installed).
if command -v openssl >/dev/null; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/tls.key" \
    -out "$tmp/tls.pem" -days 2 -subj /CN=localhost >/dev/null 2>&1
  # Unpaced 3000-byte messages to 40 TLS readers on a busy machine (ctest runs
  # other tests beside it) can let a reader fall 1 MiB behind: that is the
  # slow-consumer policy (tested elsewhere), not what this smoke checks.
  start tls --tls-cert "$tmp/tls.pem" --tls-key "$tmp/tls.key" --max-backpressure 64MiB
  tt=(--target "127.0.0.1:$port" --tls)
  check connect-tls connect "${tt[@]}" --connections 100 --duration 1s
  check fanout-tls fanout "${tt[@]}" --subscribers 40 --publishers 2 --duration 1s --warmup 200ms --message-size 3000
fi

# Two nodes behind a redis-server of our own (when there is one): on one port
# (SO_REUSEPORT), and on two ports with --spread; every room spans both nodes.
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
  rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --loglevel warning >"$tmp/redis.log" 2>&1 &
  rpid=$!
  pids+=("$rpid")
  for _ in $(seq 1 100); do
    [ "$(redis-cli -p "$rport" ping 2>/dev/null)" = PONG ] && break
    sleep 0.05
  done
  cl=(--redis "redis://127.0.0.1:$rport" --config "$tmp/streams.toml")
  THREADS=1 start n0 "${cl[@]}" --node-id n0 --reuse-port
  n0=$port
  n0pid=${pids[-1]}
  "$server" --listen "127.0.0.1:$n0" --admin 127.0.0.1:0 --threads 1 --reuse-port \
    "${cl[@]}" --node-id n1 2>"$tmp/n1.log" &
  pids+=($!)
  n1pid=$!
  THREADS=1 start n2 "${cl[@]}" --node-id n2
  n2=$port
  for n in n0 n1 n2; do  # every node's link to Redis up
    for _ in $(seq 1 100); do
      grep -q "cluster link up" "$tmp/$n.log" && break
      sleep 0.1
    done
    grep -q "cluster link up" "$tmp/$n.log" || { echo "node $n did not join:"; cat "$tmp/$n.log"; exit 1; }
  done
  check cluster-reuseport fanout --target "127.0.0.1:$n0" --server-pid "$n0pid" \
    --server-pid "$n1pid" --aux-pid "$rpid" --subscribers 200 --channels 4 --publishers 4 \
    --rate 200 --duration 1s --warmup 300ms --procs 2
  check cluster-spread fanout --target "127.0.0.1:$n0" --target "127.0.0.1:$n2" --spread \
    --subscribers 200 --channels 4 --publishers 4 --rate 200 --duration 1s --warmup 300ms
  check cluster-recover recover --target "127.0.0.1:$n0" --target "127.0.0.1:$n2" --spread \
    --subscribers 100 --channels 4 --missed 20 --procs 2 --redis-info "127.0.0.1:$rport"
else
  echo "skip  cluster (no redis-server)"
fi
echo "bench smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
