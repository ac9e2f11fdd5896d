#!/bin/sh
# ctest entry point: run_cluster.sh [--otlp] MODULE. Exits 77 (skipped) when
# Debian's python3 is missing; run.py checks the other prerequisites.
if [ ! -x /usr/bin/python3 ]; then
  echo "SKIP: /usr/bin/python3 not installed"
  exit 77
fi
exec /usr/bin/python3 -X faulthandler "$(dirname "$0")/run.py" "$@"
