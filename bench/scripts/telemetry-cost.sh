#!/bin/bash
# The cost of telemetry in server instructions, deterministically: the same
# fan-out workload (1 -> 100 subscribers, 500 msg/s for 6 s) under callgrind
# with telemetry off, metrics only, 1% and 100% sampling.
#   BUILD=build bench/scripts/telemetry-cost.sh
set -u
B=${BUILD:-build}
for mode in off metrics ratio1 full; do
  case $mode in
    off) E="OTEL_SDK_DISABLED=true";;
    metrics) E="OTEL_TRACES_SAMPLER=always_off";;
    ratio1) E="OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.01";;
    full) E="OTEL_TRACES_SAMPLER=always_on";;
  esac
  rm -f /tmp/cg.out.*
  env $E valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out.%p $B/wstrace --listen 127.0.0.1:0 --admin 127.0.0.1:0 --threads 2 > /tmp/tcg.log 2>&1 &
  PID=$!
  for i in $(seq 100); do grep -q ' port=' /tmp/tcg.log && break; sleep 0.2; done
  PORT=$(grep -o ' port=[0-9]*' /tmp/tcg.log | head -1 | cut -d= -f2)
  OUT=$($B/wstrace-bench fanout --target 127.0.0.1:$PORT --subscribers 100 --publishers 1 --rate 500 --duration 5s --warmup 1s --procs 1 --quiet --json --drain-timeout 20s --handshake-timeout 30s 2>/dev/null)
  D=$(echo "$OUT" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("deliveries",0))')
  kill $PID; wait $PID 2>/dev/null
  I=$(callgrind_annotate /tmp/cg.out.* 2>/dev/null | grep -m1 "PROGRAM TOTALS" | awk '{gsub(",","",$1); print $1}')
  echo "$mode deliveries=$D instructions=$I per_delivery=$(python3 -c "print(round($I/$D,1) if $D else 0)")"
done
