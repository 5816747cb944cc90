#!/usr/bin/env bash
# run_gtest.sh COUNTS_FILE COMMAND...
# Runs a GoogleTest program for ctest (COMMAND: the program, or the MPI launcher running it, whose
# rank 0 prints the usual GoogleTest output), passing its output through unchanged, and:
# - writes the cases of GoogleTest's final summary to COUNTS_FILE, one line:
#     ran N passed P skipped S failed F
#   (scripts/test.sh adds them up: ctest itself counts entries, not the cases inside them);
# - exits 77, the entry's SKIP_RETURN_CODE (cmake/NmeshHelpers.cmake), when the program passed
#   and every case it ran was skipped (GTEST_SKIP: the NCCL tests without a GPU), so that ctest
#   reports the entry as skipped, not passed. A failure, or a run of no case, keeps its exit code.
set -u
counts="$1"
shift
out=$(mktemp)
trap 'rm -f "$out"' EXIT
mkdir -p "$(dirname "$counts")"
rm -f "$counts"
"$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
# The last summary's numbers (colour codes removed): "[==========] 10 tests from 5 test suites
# ran.", "[  PASSED  ] 4 tests.", "[  SKIPPED ] 6 tests, listed below:", "[  FAILED  ] 1 test,
# listed below:".
summary() {  # summary REGEX: the number the last line matching REGEX starts with, or 0
  sed 's/\x1b\[[0-9;]*m//g' "$out" | sed -nE "s/$1/\\1/p" | tail -n 1 | grep . || echo 0
}
ran=$(summary '^\[==========\] ([0-9]+) tests? from .* ran\..*')
passed=$(summary '^\[  PASSED  \] ([0-9]+) tests?\..*')
skipped=$(summary '^\[  SKIPPED \] ([0-9]+) tests?, listed below:.*')
failed=$(summary '^\[  FAILED  \] ([0-9]+) tests?, listed below:.*')
echo "ran $ran passed $passed skipped $skipped failed $failed" >"$counts"
if [ "$rc" -eq 0 ] && [ "$ran" -gt 0 ] && [ "$skipped" -eq "$ran" ]; then
  echo "run_gtest: all $ran cases skipped: reporting the entry as skipped (exit 77)"
  exit 77
fi
exit "$rc"
