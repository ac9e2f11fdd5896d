"""ctest entry point for the cluster suite: run.py [--otlp] MODULE...

Exits 77 (ctest SKIP_RETURN_CODE) when a prerequisite is missing: Debian's
python3-websockets, redis-server, or (with --otlp) node and the OTLP
receiver's node_modules (`npm ci` in tests/integration/otlp). Needs
WSTRACE_BIN. Run with /usr/bin/python3 (a python3 earlier on PATH may not see
Debian's packages)."""

import os
import sys
import unittest

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
os.chdir(here)

args = sys.argv[1:]
need_otlp = "--otlp" in args
modules = [a for a in args if a != "--otlp"]

try:
    import websockets  # noqa: F401
except ImportError:
    print("SKIP: python3-websockets is not installed (apt-get install python3-websockets)")
    sys.exit(77)

import cluster_support  # noqa: E402

redis = cluster_support.redis_server_bin()
if not os.access(redis, os.X_OK):
    print("SKIP: redis-server is not installed (apt-get install redis-server)")
    sys.exit(77)
if need_otlp and not cluster_support.otlp_available():
    print("SKIP: node or tests/integration/otlp/node_modules missing (npm ci there)")
    sys.exit(77)

binary = os.environ.get("WSTRACE_BIN", "")
if not os.access(binary, os.X_OK):
    print(f"WSTRACE_BIN={binary!r} is not an executable")
    sys.exit(1)

suite = unittest.defaultTestLoader.loadTestsFromNames(modules)
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
sys.exit(0 if result.wasSuccessful() else 1)
