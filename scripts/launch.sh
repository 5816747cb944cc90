#!/usr/bin/env bash
# Starts N local processes of one job with torchrun's environment, for tests and the README's
# store-launch example (a test helper, not a process manager):
#   scripts/launch.sh -n N [--local-size L] -- CMD [ARGS...]
# Process r gets RANK=r, WORLD_SIZE=N, LOCAL_RANK=r mod L, LOCAL_WORLD_SIZE=L (L defaults to N:
# one host), and MASTER_ADDR/MASTER_PORT as torchrun sets them (nmesh does not read them: its
# store is --store or NMESH_STORE). CMD runs directly (no shell): its arguments are passed as they
# are. Waits for every process and exits with the worst exit code (a process killed by signal S
# counts as 128+S). On SIGINT or SIGTERM it ends its own processes (by PID: SIGTERM, then SIGKILL
# after 5 s) and exits 130 or 143; it never signals anything else.
set -u

usage() {
  echo "usage: scripts/launch.sh -n N [--local-size L] -- CMD [ARGS...]" >&2
  exit 2
}

n=""
local_size=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    -n) [[ $# -ge 2 ]] || usage; n="$2"; shift 2 ;;
    --local-size) [[ $# -ge 2 ]] || usage; local_size="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "launch.sh: unknown option '$1'" >&2; usage ;;
  esac
done
[[ "$n" =~ ^[1-9][0-9]{0,4}$ ]] || { echo "launch.sh: -n must be a positive integer, got '$n'" >&2; exit 2; }
local_size="${local_size:-$n}"
[[ "$local_size" =~ ^[1-9][0-9]{0,4}$ ]] || { echo "launch.sh: --local-size must be a positive integer" >&2; exit 2; }
[[ $# -ge 1 ]] || usage

pids=()

end_children() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive -eq 0 ]] && return
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
}

on_signal() {
  trap - INT TERM
  end_children
  wait 2>/dev/null
  exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

for ((r = 0; r < n; r++)); do
  RANK=$r WORLD_SIZE=$n LOCAL_RANK=$((r % local_size)) LOCAL_WORLD_SIZE=$local_size \
    MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 "$@" &
  pids+=($!)
done

worst=0
for pid in "${pids[@]}"; do
  # `wait` returns early when a trapped signal arrives; the trap then ends the job.
  wait "$pid"
  code=$?
  ((code > worst)) && worst=$code
done
exit "$worst"
