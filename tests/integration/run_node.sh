#!/bin/sh
# ctest entry point: run_node.sh TEST_FILE... Exits 77 (skipped) when node or
# node_modules (run `npm ci` in tests/integration/node) is missing.
dir="$(dirname "$0")/node"
if ! command -v node >/dev/null 2>&1; then
  echo "SKIP: node not installed"
  exit 77
fi
if [ ! -f "$dir/node_modules/ws/package.json" ]; then
  echo "SKIP: run 'npm ci' in $dir"
  exit 77
fi
cd "$dir" || exit 1
exec node --test --test-reporter=spec "$@"
