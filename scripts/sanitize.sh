#!/usr/bin/env bash
# The test suite under sanitizers, each in its own build directory, with the time each step took.
#   scripts/sanitize.sh            # both
#   scripts/sanitize.sh asan       # ASan+UBSan, whole suite, build-address-undefined/
#   scripts/sanitize.sh tsan       # TSan, the MPI-free unit tests (ctest -L unit), build-thread/
#
# ASan+UBSan: every finding is fatal (-fno-sanitize-recover=all). Leak detection stays on for every
# single-process test. In the MPI runs (ctest -L mpi, under mpirun) the MPI library's own
# allocations that live until exit are suppressed by scripts/lsan_mpi.supp (frames inside the
# Open MPI / MPICH libraries and their helpers only), so nmesh's own leaks there are still reported.
# TSan: MPI runs are excluded. The MPI library and its progress threads are not instrumented, so
# TSan cannot see their synchronisation and reports races inside it (docs/RELIABILITY.md).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
case "$what" in all | asan | tsan) ;; *) echo "usage: scripts/sanitize.sh [asan|tsan|all]" >&2; exit 2 ;; esac

export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
timings=()
step() {  # step NAME COMMAND...: runs COMMAND and records how long it took
  local name="$1" start
  shift
  start=$(date +%s)
  "$@"
  timings+=("$name: $(($(date +%s) - start)) s")
}

if [ "$what" = all ] || [ "$what" = asan ]; then
  dir=build-address-undefined
  step "asan build" scripts/build.sh "$dir" -DNMESH_SANITIZE=address,undefined
  rm -rf "$dir/Testing/gtest_cases"
  # Entries without the mpi label may still start MPI in their own process (the in-process CLI
  # tests run `nmesh` as a function, which initialises MPI as a singleton): the same suppressions,
  # which match frames of the MPI libraries only.
  step "asan tests without MPI" \
    env ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
    LSAN_OPTIONS="suppressions=$PWD/scripts/lsan_mpi.supp:fast_unwind_on_malloc=0:print_suppressions=0" \
    ctest --test-dir "$dir" --output-on-failure --timeout 900 -j "$(nproc)" -LE mpi
  step "asan MPI tests" \
    env ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
    LSAN_OPTIONS="suppressions=$PWD/scripts/lsan_mpi.supp:fast_unwind_on_malloc=0:print_suppressions=0" \
    ctest --test-dir "$dir" --output-on-failure --timeout 900 -j "$(nproc)" -L mpi
  scripts/gtest_cases.sh "$dir"
fi
if [ "$what" = all ] || [ "$what" = tsan ]; then
  dir=build-thread
  step "tsan build" scripts/build.sh "$dir" -DNMESH_SANITIZE=thread
  rm -rf "$dir/Testing/gtest_cases"
  step "tsan unit tests" \
    env TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}" \
    ctest --test-dir "$dir" --output-on-failure --timeout 900 -j "$(nproc)" -L unit
  scripts/gtest_cases.sh "$dir"
fi
printf 'sanitize: %s\n' "${timings[@]}"
