"""ctest entry point for one Python test module: run.py MODULE [MODULE...]

Exits 77 (ctest SKIP_RETURN_CODE) when Debian's python3-websockets is
missing; needs WSTRACE_BIN. Run with /usr/bin/python3 (a python3 earlier on
PATH may not see Debian's packages)."""

import os
import sys
import unittest

try:
    import websockets  # noqa: F401
except ImportError:
    print("SKIP: python3-websockets is not installed (apt-get install python3-websockets)")
    sys.exit(77)

binary = os.environ.get("WSTRACE_BIN", "")
if not os.access(binary, os.X_OK):
    print(f"WSTRACE_BIN={binary!r} is not an executable")
    sys.exit(1)

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
os.chdir(here)
suite = unittest.defaultTestLoader.loadTestsFromNames(sys.argv[1:])
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
sys.exit(0 if result.wasSuccessful() else 1)
