#!/usr/bin/env bash
# The chat demo in one command: builds what is missing (wstrace, the SDK, the
# page) and serves it on http://127.0.0.1:8000/ with a wstrace of its own.
#   examples/chat/run.sh [--port 8000] [--otlp http://127.0.0.1:4318]   (node serve.mjs --help)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
scripts/setup.sh
if ! command -v node >/dev/null 2>&1; then
  echo "chat: installing nodejs and npm" >&2
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [[ ! -f build/build.ninja ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
ninja -C build wstrace >/dev/null
for d in clients/js examples/chat; do
  [[ -d "$d/node_modules" ]] || (cd "$d" && npm ci --no-audit --no-fund --loglevel=error)
done
(cd clients/js && npm run --silent build >/dev/null)
(cd examples/chat && npm run --silent build)
exec node examples/chat/serve.mjs --wstrace "$root/build/wstrace" "$@"
