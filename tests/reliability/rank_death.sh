#!/usr/bin/env bash
# rank_death.sh MPIRUN_WRAPPER NMESH NP [SIGNAL [TIMEOUT_S]]
# Sends SIGNAL (default KILL) to one rank of a running `nmesh bench` and checks that the job ends
# non-zero within 30 s and leaves no nmesh process behind. Prints the measured time to exit.
#   KILL: the rank dies; the launcher notices, ends the job and (Open MPI) names the rank: that is
#         checked. Nothing of nmesh can name the axis and operation here: the launcher ends the
#         other ranks within about a second, before any timeout.
#   STOP: the rank freezes (alive, never progressing). Only a communicator timeout can notice
#         that, so TIMEOUT_S (default 1) is passed as --timeout-s: the other ranks time out in
#         their collective, report DeadlineExceeded and end the job, which kills the frozen rank.
set -u
. "$(dirname "$0")/wait_job.sh"
mpirun_wrapper="$1"
nmesh="$2"
np="${3:-4}"
signal="${4:-KILL}"
extra=()
[ "$signal" = STOP ] && extra=(--timeout-s "${5:-1}")
log=$(mktemp)
trap 'rm -f "$log"' EXIT
setsid "$mpirun_wrapper" -np "$np" "$nmesh" bench --tp 2 --op all_reduce -b 1M -e 1M \
  -n 987651 -w 1 --backend mpi "${extra[@]}" >/dev/null 2>"$log" &
job=$!  # also the id of the job's session (wait_job.sh): its ranks are the nmesh processes in it
check_session "$job" || { kill -9 "$job" 2>/dev/null; exit 1; }

ranks=""
for _ in $(seq 1 100); do  # up to 20 s for the ranks to start
  ranks=$(pgrep -s "$job" -x nmesh || true)
  [ "$(echo "$ranks" | grep -c .)" -ge "$np" ] && break
  sleep 0.2
done
victim=$(echo "$ranks" | tail -n 1)
if [ -z "$victim" ]; then
  echo "rank_death: no rank found to kill" >&2
  kill_job "$job"
  exit 1
fi
# The fault must hit the collectives, not the start-up (which takes seconds under a sanitizer):
# wait for rank 0's banner, printed once the meshes are built, then let the collectives get going.
for _ in $(seq 1 300); do  # up to 60 s
  grep -q "nmesh: bench: backend" "$log" && break
  sleep 0.2
done
sleep 1
victim_rank=$(tr '\0' '\n' <"/proc/$victim/environ" 2>/dev/null |
  sed -n 's/^\(OMPI_COMM_WORLD_RANK\|PMI_RANK\)=//p' | head -n 1)
start=$(date +%s%N)
kill -s "$signal" "$victim"
echo "rank_death: sent SIG$signal to rank pid $victim"

wait_job "$job" 30
end=$(date +%s%N)
elapsed_ms=$(( (end - start) / 1000000 ))
elapsed="$((elapsed_ms / 1000)).$(printf '%03d' $((elapsed_ms % 1000)))"
if [ -z "$rc" ]; then
  echo "rank_death: job still running 30 s after the kill" >&2
  kill_job "$job"
  exit 1
fi
sleep 0.5
left=$(job_processes "$job" | tr '\n' ' ')
echo "rank_death: job exited with $rc after ${elapsed} s; processes left: ${left:-none}"
if [ -n "$left" ]; then
  kill_job "$job"
  exit 1
fi
[ "$rc" -ne 0 ] || { echo "rank_death: job exited 0 after losing a rank" >&2; exit 1; }
if [ "$signal" = KILL ] && "$mpirun_wrapper" --version 2>&1 | grep -q "Open MPI"; then
  # The dead rank cannot report; the launcher ends the job within about a second and names it.
  if ! grep -Eq -- "process rank ${victim_rank:-?} with PID [0-9]+ on node .* exited on signal 9" "$log"; then
    echo "rank_death: the job's output does not name the killed rank ${victim_rank:-?}" >&2
    echo "---- the job's stderr ----" >&2
    cat "$log" >&2
    exit 1
  fi
  grep -E "process rank [0-9]+ with PID" "$log"
fi
if [ "$signal" = STOP ]; then
  # The frozen rank's peers in the group being measured must have said why they gave up, naming
  # the frozen rank (which cannot answer the watchdog's request for its records), the axis and the
  # operation with its sequence number.
  want="all_reduce on axis '([^']+)' timed out after ${5:-1} s \\(rank [0-9]+ of [0-9]+\\): timeout on axis '[^']+' \\(group \\[[0-9, ]+\\]\\): rank ${victim_rank:-?} did not answer: stopped or dead; ranks? [0-9, ]+ waits? in all_reduce #[0-9]+"
  if ! grep -Eq -- "$want" "$log"; then
    echo "rank_death: no rank named the frozen rank ${victim_rank:-?}; wanted: $want" >&2
    echo "---- the job's stderr ----" >&2
    cat "$log" >&2
    exit 1
  fi
  grep "timed out" "$log" | head -n 3
fi
exit 0
