#!/bin/sh
# ctest entry point: run_python.sh MODULE. Exits 77 (skipped) when Debian's
# python3 or python3-websockets is missing.
if [ ! -x /usr/bin/python3 ]; then
  echo "SKIP: /usr/bin/python3 not installed"
  exit 77
fi
exec /usr/bin/python3 -X faulthandler "$(dirname "$0")/python/run.py" "$@"
