#!/usr/bin/env bash
# Installs what is missing, builds wstrace (release) and runs it.
# Arguments go to wstrace:  scripts/run.sh --listen 0.0.0.0:8080 --compression on
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWSTRACE_TESTS=OFF >/dev/null
ninja -C build wstrace
exec ./build/wstrace "$@"
