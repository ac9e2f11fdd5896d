#!/bin/sh
# ctest entry point: run_telemetry.sh test_X.py [TestClass...]. Exits 77
# (skipped) when Debian's python3 is missing; the module itself checks the
# rest (python3-websockets, node and the receiver's node_modules, prometheus).
if [ ! -x /usr/bin/python3 ]; then
  echo "SKIP: /usr/bin/python3 not installed"
  exit 77
fi
cd "${0%/*}" || exit 1
exec /usr/bin/python3 -X faulthandler "$@"
