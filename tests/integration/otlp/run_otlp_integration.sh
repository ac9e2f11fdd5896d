#!/bin/sh
# ctest entry point: exits 77 (ctest SKIP_RETURN_CODE) when node or the
# receiver's node_modules are missing (CI runs `npm ci` in this directory).
# usage: run_otlp_integration.sh <test binary> <receiver dir>
bin="$1"
dir="$2"
if ! command -v node >/dev/null 2>&1; then
  echo "SKIP: node not installed"
  exit 77
fi
if [ ! -d "$dir/node_modules/@opentelemetry/otlp-transformer" ]; then
  echo "SKIP: run 'npm ci' in $dir"
  exit 77
fi
WSTRACE_OTLP_RECEIVER_DIR="$dir" exec "$bin"
