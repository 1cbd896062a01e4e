#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/*_fuzz.cpp, with clang) and runs each over its seeds in
# fuzz/corpus/<target>/ for SECONDS (default 60), with fuzz/<target>.dict's tokens where there is one,
# then prints libFuzzer's final stats per target.
# Exits non-zero when any target found a crash, a leak, a timeout or an out-of-memory input; its
# reproducer is under build-fuzz/fuzz-runs/<target>/artifacts/.
#
#   scripts/dev/fuzz.sh [SECONDS]
#   QWENVK_FUZZ_PARALLEL=1 scripts/dev/fuzz.sh 1800   # every target at once, one core each
#
# New inputs go to build-fuzz/fuzz-runs/<target>/corpus/, kept between runs; the committed seeds
# are only read.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${QWENVK_FUZZ_BUILD:-$root/build-fuzz}"
targets=()
for source in "$root"/fuzz/*_fuzz.cpp; do targets+=("$(basename "$source" .cpp)"); done

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DQWENVK_BUILD_FUZZERS=ON \
  -DQWENVK_BUILD_TESTS=OFF >/dev/null
nice -n 10 ninja -C "$build" "${targets[@]}"

run() {
  local target="$1" work="$build/fuzz-runs/$1"
  local dict=()
  [[ -f "$root/fuzz/$target.dict" ]] && dict=(-dict="$root/fuzz/$target.dict")
  mkdir -p "$work/corpus" "$work/artifacts"
  nice -n 10 "$build/fuzz/$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "${dict[@]}" "$work/corpus" "$root/fuzz/corpus/$target" \
    >"$work/log.txt" 2>&1
}

report() {
  local target="$1" status="$2" work="$build/fuzz-runs/$1"
  if [[ "$status" == 0 ]]; then
    echo "== $target: clean"
  else
    echo "== $target: FAILED (exit $status); log $work/log.txt, reproducer in $work/artifacts/"
  fi
  grep -E '^(Done [0-9]+ runs|stat::)' "$work/log.txt" | sed 's/^/   /' || true
}

failed=0
if [[ "${QWENVK_FUZZ_PARALLEL:-0}" == 1 ]]; then
  declare -A pids
  for target in "${targets[@]}"; do
    run "$target" &
    pids[$target]=$!
  done
  for target in "${targets[@]}"; do
    status=0
    wait "${pids[$target]}" || status=$?
    report "$target" "$status"
    [[ "$status" == 0 ]] || failed=1
  done
else
  for target in "${targets[@]}"; do
    status=0
    run "$target" || status=$?
    report "$target" "$status"
    [[ "$status" == 0 ]] || failed=1
  done
fi
exit "$failed"
