#!/usr/bin/env bash
# scripts/gtest_cases.sh BUILD_DIR
# Adds up the GoogleTest cases of the last ctest run in BUILD_DIR (each GoogleTest entry writes
# its counts to BUILD_DIR/Testing/gtest_cases/ENTRY.txt through tests/run_gtest.sh) and prints
#   gtest cases: N ran in E entries: P passed, S skipped, F failed
#   gtest cases skipped: S in K entries (A entries all skipped, reported as skipped by ctest): ...
# ctest counts entries only; an entry that passes may hold skipped cases (GTEST_SKIP), and this is
# where they are counted. scripts/test.sh and scripts/sanitize.sh call it after their ctest runs.
set -euo pipefail
dir="${1:?usage: scripts/gtest_cases.sh BUILD_DIR}/Testing/gtest_cases"
if ! compgen -G "$dir/*.txt" >/dev/null; then
  echo "gtest cases: no counts in $dir"
  exit 0
fi
awk '
  { entry = FILENAME; sub(".*/", "", entry); sub("\\.txt$", "", entry)
    ran += $2; passed += $4; skipped += $6; failed += $8; ++entries
    if ($6 > 0) { ++with_skips; list = list sprintf("\n  %s: %d of %d skipped", entry, $6, $2) }
    if ($6 > 0 && $6 == $2) ++all_skipped }
  END {
    printf "gtest cases: %d ran in %d entries: %d passed, %d skipped, %d failed\n", ran, entries, passed, skipped, failed
    if (skipped > 0)
      printf "gtest cases skipped: %d in %d entries (%d entries all skipped, reported as skipped by ctest):%s\n", skipped, with_skips, all_skipped, list
  }' "$dir"/*.txt
