#!/usr/bin/env bash
# server_failover.sh MPIRUN_WRAPPER SERVER_FAILOVER NP TRIALS
# Runs examples/server_failover (rank 1 is 5 s late at model A's interruptible step with a 2 s
# timeout; A fails everywhere, B keeps serving, A is rebuilt) TRIALS times at NP ranks from the
# repository root. Every trial must exit 0 within 60 s, every rank must print its verdict line
# ("... model_b served 20 steps, model_a rebuilt and serves"), the late rank must say it was the
# late one, and no process may be left behind. Prints "server_failover: P/T trials passed".
#   tests/reliability/server_failover.sh scripts/mpirun.sh build/examples/server_failover 4 20
set -u +m
. "$(dirname "$0")/wait_job.sh"
mpirun_wrapper="$1" program="$2" np="$3" trials="$4"
cd "$(dirname "$0")/../.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
passed=0
for ((t = 1; t <= trials; ++t)); do
  setsid "$mpirun_wrapper" -np "$np" "$program" >"$out" 2>&1 &
  job=$!
  for ((i = 0; i < 20; ++i)); do  # setsid(2) may not have run yet
    [ "$(ps -o sid= -p "$job" 2>/dev/null | tr -d ' ')" = "$job" ] && break
    sleep 0.05
  done
  check_session "$job" || exit 1
  wait_job "$job" 60
  problem=""
  if [ -z "$rc" ]; then
    problem="still running after 60 s"
    kill_job "$job"
  elif [ "$rc" -ne 0 ]; then
    problem="exit code $rc"
  fi
  lines=$(grep -c "^server_failover: rank [0-9]*: model_a failed .*model_b served 20 steps, model_a rebuilt and serves" "$out")
  [ -z "$problem" ] && [ "$lines" -ne "$np" ] && problem="$lines of $np ranks printed their verdict"
  [ -z "$problem" ] && ! grep -q "^server_failover: rank 1: model_a failed (ABORTED, late rank)" "$out" &&
    problem="the late rank did not fail naming the revocation"
  left=$(job_processes "$job" | tr '\n' ' ')
  if [ -n "$left" ]; then
    problem="${problem:+$problem; }processes left behind: $left"
    kill_job "$job"
  fi
  if [ -n "$problem" ]; then
    echo "server_failover: trial $t: $problem" >&2
    cat "$out" >&2
  else
    passed=$((passed + 1))
  fi
done
echo "server_failover: $passed/$trials trials passed"
[ "$passed" -eq "$trials" ]
