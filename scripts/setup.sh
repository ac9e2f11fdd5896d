#!/usr/bin/env bash
# Installs what wstrace needs to build and test, on Debian 12. Safe to re-run:
# only missing packages are installed. Uses sudo when not root.
set -euo pipefail

BUILD_PKGS=(build-essential cmake ninja-build pkg-config libssl-dev zlib1g-dev libsimdjson-dev
            libhiredis-dev libcli11-dev libtomlplusplus-dev libcurl4-openssl-dev libjs-chart.js)
# What the README's "Try it" uses against a running server.
TRY_PKGS=(python3 python3-websockets curl)
TEST_PKGS=(libgtest-dev libbenchmark-dev python3 python3-websockets redis-server prometheus
           clang-14 libclang-rt-14-dev curl procps util-linux openssl python3-jwt python3-cryptography
           chromium)

want=("${BUILD_PKGS[@]}" "${TRY_PKGS[@]}")
if [[ "${1:-}" == "--test" ]]; then
  want+=("${TEST_PKGS[@]}")
  command -v node >/dev/null 2>&1 || want+=(nodejs npm)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Packages installed for the tests must not run as services: the tests start
# their own redis-server/prometheus on free ports.
if [[ "${1:-}" == "--test" ]]; then
  for d in clients/js examples/chat tests/integration/node tests/integration/otlp bench/peers/node-ws; do
    # Again when the lock file changed since the last install.
    if [[ -f "$d/package-lock.json" && ( ! -d "$d/node_modules" ||
          "$d/package-lock.json" -nt "$d/node_modules/.package-lock.json" ) ]]; then
      echo "setup: npm ci in $d" >&2
      (cd "$d" && npm ci --no-audit --no-fund --loglevel=error)
    fi
  done
  # The JavaScript SDK the Node, browser and chat tests load (tsc + a minified bundle).
  echo "setup: building clients/js" >&2
  (cd clients/js && npm run --silent build >/dev/null)
  (cd examples/chat && npm run --silent build)
fi
