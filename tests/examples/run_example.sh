#!/usr/bin/env bash
# Runs one example program under mpirun from the repository root, with no arguments, and checks
# that it exits 0 and that every rank printed its verdict line.
#   run_example.sh MPIRUN NP BINARY PATTERN
# PATTERN is an extended regular expression with RANK standing for the rank number.
set -euo pipefail
mpirun="$1" np="$2" binary="$3" pattern="$4"
cd "$(dirname "$0")/../.."
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
status=0
"$mpirun" -np "$np" "$binary" >"$out" 2>&1 || status=$?
cat "$out"
if [ "$status" -ne 0 ]; then
  echo "run_example: $(basename "$binary") exited $status at np $np" >&2
  exit 1
fi
for ((rank = 0; rank < np; ++rank)); do
  if ! grep -Eq "${pattern//RANK/$rank}" "$out"; then
    echo "run_example: rank $rank printed no line matching '${pattern//RANK/$rank}'" >&2
    exit 1
  fi
done
echo "run_example: $(basename "$binary") ok on all $np ranks"
