#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang in build-fuzz/ and runs each one, then prints
# every target's execution count and the total.
#   scripts/fuzz.sh                 # 60 s per target
#   scripts/fuzz.sh --time 300      # S seconds per target
#   scripts/fuzz.sh --runs 500000   # N executions per target
#   NMESH_FUZZ_TARGETS="job" scripts/fuzz.sh --runs 1000000   # only these targets
# Memory: -rss_limit_mb=2048 for every target; job_fuzzer (whole jobs: recipe + flags) also stops
# at any single allocation over 256 MiB (-malloc_limit_mb): its inputs are a few KiB, and parsing
# a recipe is bounded by a small multiple of its size.
# Each target starts from its seeds in fuzz/corpus/<target>/ plus what earlier runs found
# (build-fuzz/corpus/<target>/, never written back to the repository). A crash, leak, timeout
# (10 s per input) or out-of-memory stops the script with exit 1 and names the reproducer under
# build-fuzz/artifacts/<target>/; keep it as fuzz/corpus/<target>/crash-<what> plus a regression
# test (docs/RELIABILITY.md).
set -euo pipefail
cd "$(dirname "$0")/.."
limit=(-max_total_time=60)
case "${1:-}" in
  "") ;;
  --time) limit=(-max_total_time="${2:?--time needs seconds}") ;;
  --runs) limit=(-runs="${2:?--runs needs a count}") ;;
  *) echo "usage: scripts/fuzz.sh [--time S | --runs N]" >&2; exit 2 ;;
esac

# clang and its runtime libraries (libFuzzer, ASan, UBSan) on top of the usual packages.
scripts/install_deps.sh clang libclang-rt-dev
build_dir=build-fuzz
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DNMESH_BUILD_FUZZERS=ON -DNMESH_BUILD_TESTS=OFF -DNMESH_BUILD_BENCHMARKS=OFF \
    -DNMESH_WITH_NCCL=OFF
fi
read -r -a targets <<< "${NMESH_FUZZ_TARGETS:-recipe plan_args job}"
cmake --build "$build_dir" -j "$(nproc)" --target "${targets[@]/%/_fuzzer}"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
total=0
for target in "${targets[@]}"; do
  corpus="$build_dir/corpus/$target"
  artifacts="$build_dir/artifacts/$target/"
  mkdir -p "$corpus" "$artifacts"
  log="$build_dir/fuzz-$target.log"
  echo "+ $build_dir/fuzz/${target}_fuzzer ${limit[*]} $corpus fuzz/corpus/$target"
  memory=(-rss_limit_mb=2048)
  [ "$target" = job ] && memory+=(-malloc_limit_mb=256)
  status=0
  "$build_dir/fuzz/${target}_fuzzer" "${limit[@]}" -timeout=10 "${memory[@]}" \
    -print_final_stats=1 -dict="fuzz/$target.dict" -artifact_prefix="$artifacts" \
    "$corpus" "fuzz/corpus/$target" > "$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ "$status" -ne 0 ] || [ -z "$runs" ]; then
    tail -n 60 "$log"
    echo "fuzz: $target FAILED (exit $status); reproducer under $artifacts, log $log" >&2
    exit 1
  fi
  seconds=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  echo "fuzz: $target: $runs executions, no findings (${seconds:-?} s, corpus $(ls "$corpus" | wc -l) inputs)"
  total=$((total + runs))
done
echo "fuzz: total $total executions, no findings"
