#!/usr/bin/env bash
# tests/job/recover_store.sh PROGRAM SCENARIO CODES
# Runs PROGRAM SCENARIO file://DIR as the 4 ranks of a store launch (RANK, WORLD_SIZE, LOCAL_RANK,
# LOCAL_WORLD_SIZE as torchrun sets them; DIR a fresh directory), and checks each rank's exit code
# against CODES (comma-separated, by rank; 137 for a rank that SIGKILLs itself). Every process must
# end within 120 s: past that the script kills what is left (by PID) and fails. Ends only the
# processes it started.
set -u
program="$1"
scenario="$2"
IFS=, read -r -a codes <<<"$3"
n=${#codes[@]}
dir=$(mktemp -d "${TMPDIR:-/tmp}/nmesh_recover.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

for ((r = 0; r < n; r++)); do
  RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r LOCAL_WORLD_SIZE=$n "$program" "$scenario" "file://$dir/store" \
    >"$dir/rank$r.log" 2>&1 &
  pids+=($!)
done

# Bounded wait: every process ends within the limit, or the rest are killed and the case fails.
hung=0
for _ in $(seq 1200); do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [[ $alive -eq 0 ]] && break
  sleep 0.1
done
for pid in "${pids[@]}"; do
  if kill -0 "$pid" 2>/dev/null; then
    hung=1
    kill -KILL "$pid" 2>/dev/null
  fi
done

failures=0
for ((r = 0; r < n; r++)); do
  wait "${pids[$r]}"
  code=$?
  sed "s/^/  [rank $r] /" "$dir/rank$r.log"
  if [[ $code -ne ${codes[$r]} ]]; then
    echo "FAIL rank $r: exit $code, expected ${codes[$r]}"
    failures=$((failures + 1))
  fi
done
if [[ $hung -ne 0 ]]; then
  echo "FAIL: processes still running after 120 s (killed)"
  failures=$((failures + 1))
fi
[[ $failures -eq 0 ]] && echo "ok: $scenario"
exit $((failures > 0))
