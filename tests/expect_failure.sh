#!/usr/bin/env bash
# expect_failure.sh REGEX COMMAND...
# Passes when COMMAND exits non-zero and its combined output matches the extended REGEX (grep -E,
# across lines joined by spaces). Used to prove that failures are reported, not swallowed.
# With EXPECT_RC set, the exit code must also be exactly that.
set -u
regex="$1"
shift
output=$("$@" 2>&1)
rc=$?
printf '%s\n' "$output"
if [ "$rc" -eq 0 ]; then
  echo "expect_failure: command exited 0, expected a failure" >&2
  exit 1
fi
if [ -n "${EXPECT_RC:-}" ] && [ "$rc" -ne "$EXPECT_RC" ]; then
  echo "expect_failure: command exited $rc, expected $EXPECT_RC" >&2
  exit 1
fi
if ! printf '%s' "$output" | tr '\n' ' ' | grep -Eq -- "$regex"; then
  echo "expect_failure: output does not match: $regex" >&2
  exit 1
fi
echo "expect_failure: exited $rc and matched, as expected"
