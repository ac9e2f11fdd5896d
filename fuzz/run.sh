#!/usr/bin/env bash
# Builds every libFuzzer target (clang 14) and runs each for N seconds
# (default 20) over a copy of its seed corpus, so runs never add files to the
# repository. Exits non-zero if a target fails to build or any run finds a
# crash, leak, timeout or sanitizer report; the reproducer is kept and its
# path printed.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     e.g. fuzz/run.sh 60 ws_receiver_fuzz
#
# Environment: BUILD_DIR (default <repo>/build-fuzz), CC/CXX (default clang-14).
set -euo pipefail

seconds="${1:-20}"
shift || true
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$repo/build-fuzz}"
export CC="${CC:-clang-14}" CXX="${CXX:-clang++-14}"
# The fuzz build compiles UBSan in recover mode: make every report fatal so
# libFuzzer keeps the input and the run fails.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

cmake -S "$repo" -B "$build" -G Ninja -DWSTRACE_FUZZ=ON -DWSTRACE_TESTS=OFF >/dev/null
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  # Every executable built in fuzz/ (declared by the fuzz/*.cmake files).
  mapfile -t targets < <(ninja -C "$build" -t targets all |
    sed -n 's/^fuzz\/\([A-Za-z0-9_]*\): CXX_EXECUTABLE_LINKER.*/\1/p' | sort -u)
fi
[ "${#targets[@]}" -gt 0 ] || { echo "no fuzz targets found" >&2; exit 1; }
ninja -C "$build" "${targets[@]}"

work="$(mktemp -d "${TMPDIR:-/tmp}/wstrace-fuzz.XXXXXX")"
failed=()
for t in "${targets[@]}"; do
  # Seeds live in fuzz/corpus/<name>/ (name without _fuzz) or fuzz/corpus/<target>/.
  seeds="$repo/fuzz/corpus/${t%_fuzz}"
  [ -d "$seeds" ] || seeds="$repo/fuzz/corpus/$t"
  corpus="$work/$t/corpus"
  mkdir -p "$corpus"
  if [ -d "$seeds" ]; then cp -R "$seeds/." "$corpus/"; fi
  log="$work/$t/log"
  echo "== $t: ${seconds}s over $(find "$corpus" -type f | wc -l) seeds"
  if "$build/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/$t/" "$corpus" >"$log" 2>&1; then
    grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true
  else
    echo "!! $t failed; log: $log" >&2
    grep -E 'ERROR|SUMMARY|runtime error|check failed|Test unit written' "$log" | head -20 >&2 || tail -20 "$log" >&2
    failed+=("$t")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]} (artifacts and logs under $work)" >&2
  exit 1
fi
rm -rf "$work"
echo "all ${#targets[@]} fuzz targets ran ${seconds}s without a crash"
