#!/usr/bin/env bash
# The whole test suite: install missing dependencies, build, run every ctest entry (unit tests,
# MPI tests at np 1, 2, 4 and 8, the install/consumer check, the CLI end-to-end tests), then count
# the GoogleTest cases (scripts/gtest_cases.sh: passed, skipped, failed; an entry whose cases all
# skipped shows in ctest's summary as skipped, not passed).
#   scripts/test.sh                # build/ with the default options
#   NMESH_SANITIZE=address,undefined scripts/test.sh   # the same under ASan+UBSan, in
#                                                      # build-address-undefined/ (see also
#                                                      # scripts/sanitize.sh)
#   NMESH_MPI=mpich scripts/test.sh                     # against MPICH instead of Open MPI, in
#                                                      # build-mpich/ (installs MPICH if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=build
extra=()
case "${NMESH_MPI:-}" in
  "") ;;
  openmpi) extra+=("-DNMESH_MPI_FLAVOR=openmpi") ;;
  mpich)
    build_dir=build-mpich
    extra+=("-DNMESH_MPI_FLAVOR=mpich")
    ;;
  *) echo "test.sh: NMESH_MPI must be openmpi or mpich, got '${NMESH_MPI}'" >&2; exit 2 ;;
esac
if [ -n "${NMESH_SANITIZE:-}" ]; then
  build_dir="$build_dir-$(echo "$NMESH_SANITIZE" | tr ',' '-')"
  extra+=("-DNMESH_SANITIZE=$NMESH_SANITIZE")
fi
scripts/build.sh "$build_dir" -DNMESH_BUILD_TESTS=ON -DNMESH_BUILD_BENCHMARKS=ON "${extra[@]}"
cd "$build_dir"
rm -rf Testing/gtest_cases  # each GoogleTest entry writes its case counts there (tests/run_gtest.sh)
if [[ ",${NMESH_SANITIZE:-}," == *,address,* ]]; then
  # As scripts/sanitize.sh asan does: leak detection everywhere, and in the MPI runs the MPI
  # library's own allocations that live until exit suppressed (scripts/lsan_mpi.supp), so that
  # only nmesh's leaks fail a test.
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
  status=0
  ctest --output-on-failure --timeout 900 -j "$(nproc)" -LE mpi || status=1
  LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/../scripts/lsan_mpi.supp:fast_unwind_on_malloc=0:print_suppressions=0}" \
    ctest --output-on-failure --timeout 900 -j "$(nproc)" -L mpi || status=1
  ../scripts/gtest_cases.sh .
  exit "$status"
fi
status=0
ctest --output-on-failure --timeout 600 -j "$(nproc)" || status=1
# ctest counts entries; the GoogleTest cases inside them, skipped ones included, are counted here.
../scripts/gtest_cases.sh .
exit "$status"
