#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test: unit,
# integration (Python websockets, Node ws, redis-server, Prometheus), the
# benchmark smoke run and a short fuzzing pass.
#
#   scripts/test.sh              # release build in build/
#   scripts/test.sh --sanitize   # ASan+UBSan build in build-asan/, unit + integration only
#   FUZZ_SECONDS=0 scripts/test.sh   # skip fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test

jobs=$(nproc)
if [[ "${1:-}" == "--sanitize" ]]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DWSTRACE_SANITIZE=ON \
    -DWSTRACE_TESTS=ON >/dev/null
  ninja -C build-asan
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd build-asan && ctest --output-on-failure --no-tests=error -j "$jobs" -L "unit|integration" --timeout 600)
  exit 0
fi

# WSTRACE_TESTS=ON explicitly: scripts/run.sh configures the same build/
# without the tests, and CMake would otherwise keep that choice.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWSTRACE_TESTS=ON >/dev/null
ninja -C build
(cd build && ctest --output-on-failure --no-tests=error -j "$jobs" --timeout 600)
echo "test: browser screenshots in build/artifacts/"

if [[ "${FUZZ_SECONDS:-10}" != "0" && -x fuzz/run.sh ]]; then
  fuzz/run.sh "${FUZZ_SECONDS:-10}"
fi
