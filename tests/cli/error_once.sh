#!/usr/bin/env bash
# error_once.sh TEXT COMMAND...
# Passes when COMMAND (a job under a launcher) exits with code 2, prints exactly one
# "nmesh: error:" line for the whole job, and that output contains TEXT (a fixed string).
set -u
text="$1"
shift
output=$("$@" 2>&1)
rc=$?
printf '%s\n' "$output"
if [ "$rc" -ne 2 ]; then
  echo "error_once: command exited $rc, expected 2" >&2
  exit 1
fi
count=$(printf '%s\n' "$output" | grep -c '^nmesh: error:')
if [ "$count" -ne 1 ]; then
  echo "error_once: $count 'nmesh: error:' lines, expected 1" >&2
  exit 1
fi
if ! printf '%s\n' "$output" | grep -qF -- "$text"; then
  echo "error_once: output does not contain: $text" >&2
  exit 1
fi
echo "error_once: exit 2, one error line, as expected"
