#!/bin/sh
# ctest entry point of the SDK's unit tests. Exits 77 (skipped) without node;
# fails when the SDK is not built (scripts/setup.sh --test builds it).
cd "$(dirname "$0")/.." || exit 1
if ! command -v node >/dev/null 2>&1; then
  echo "SKIP: node not installed"
  exit 77
fi
if [ ! -f dist/index.js ]; then
  echo "clients/js is not built: run 'npm ci && npm run build' in clients/js (scripts/setup.sh --test does)"
  exit 1
fi
exec node --test --test-reporter=spec test/
