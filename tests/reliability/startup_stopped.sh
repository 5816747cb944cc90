#!/usr/bin/env bash
# startup_stopped.sh MPIRUN_WRAPPER NMESH CASE
# One rank of `nmesh run --tp 2` (4 ranks) gets SIGSTOP during start-up: alive, never progressing.
# The others must end within the start-up deadline (plus the slack given below), non-zero, with a
# line naming the stopped rank (or, where MPI's own start holds them, saying a process is
# stopped), and leave no process behind. Under mpirun the launcher takes the stopped rank with
# the job; under a store launch nothing does (as with a real launcher's worker): the test then
# sends it SIGCONT and, if it has not ended by itself 30 s later, kills it by PID (and says so).
# Whatever else is still there at the end is killed by PID and the test fails.
#
# CASE (each a point in start-up, reached deterministically from outside the ranks):
#   mpi.before_init   rank 3 stops itself before it starts nmesh (a wrapper shell sends itself
#                     SIGSTOP, then execs): the others wait in MPI_Init, which nmesh bounds
#                     (job/launch.cc: the start-up deadline, at least 60 s).
#   mpi.late          rank 3 stopped after MPI_Init, before the start-up agreement (it sleeps
#                     there: hidden flag --fault-late-s, seen asleep through /proc/PID/wchan).
#   mpi.inside        rank 0 is 6 s late (asleep after MPI_Init, seen through wchan); rank 3,
#                     then inside the agreement waiting for rank 0's verdict, is stopped.
#   store.before      store launch (file:// store): rank 3 stops itself before it starts nmesh.
#   store.inside      store launch, rank 0 3 s late: rank 3 stopped once its start-up record is
#                     in the store (inside the agreement, waiting for the verdict).
set -u
. "$(dirname "$0")/wait_job.sh"
mpirun_wrapper="$1"
nmesh="$2"
case_name="$3"
startup=4  # --startup-timeout-s
log=$(mktemp)
dir=$(mktemp -d "${TMPDIR:-/tmp}/nmesh_stopped.XXXXXX")
job=""
victim=""
cleanup() {
  [ -n "$victim" ] && kill -CONT "$victim" 2>/dev/null
  [ -n "$job" ] && kill_job "$job"
  rm -rf "$log" "$dir"
}
trap cleanup EXIT

# The PID of the rank whose launcher variable (OMPI_COMM_WORLD_RANK, PMI_RANK or RANK) is $2 among
# the processes of session $1, or nothing yet.
rank_pid() {
  local pid
  for pid in $(pgrep -s "$1" -x nmesh); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null |
      grep -Eqx "(OMPI_COMM_WORLD_RANK|PMI_RANK|RANK)=$2"; then
      echo "$pid"
      return
    fi
  done
}
# Whether the main thread of $1 sleeps in nanosleep (absl::SleepFor) in 5 samples of 5 over 0.5 s.
asleep() {
  local i
  for i in 1 2 3 4 5; do
    case "$(cat "/proc/$1/wchan" 2>/dev/null)" in
      *nanosleep*) ;;
      *) return 1 ;;
    esac
    sleep 0.1
  done
}
# Whether this kernel shows where a process sleeps (/proc/PID/wchan may read 0 everywhere).
wchan_works() {
  local pid w
  sleep 3 &
  pid=$!
  sleep 0.3
  w=$(cat "/proc/$pid/wchan" 2>/dev/null)
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  [[ "$w" == *nanosleep* ]]
}
fail() {
  echo "startup_stopped $case_name: $*" >&2
  echo "---- the job's output ----" >&2
  cat "$log" >&2
  exit 1
}

# A wrapper that stops itself before it becomes the rank's nmesh (same PID once continued).
stop_first=(bash -c 'kill -STOP $$; exec "$@"' stop_first)
victim_rank=3
sleeper_rank=""  # the rank seen asleep in --fault-late-s before the stop
case "$case_name" in
  mpi.before_init | mpi.late | mpi.inside)
    run=("$nmesh" run --tp 2 --backend mpi --startup-timeout-s "$startup")
    case "$case_name" in
      mpi.before_init) set -- -np 3 "${run[@]}" : -np 1 "${stop_first[@]}" "${run[@]}" ;;
      mpi.late)
        sleeper_rank=3
        set -- -np 3 "${run[@]}" : -np 1 "${run[@]}" --fault-late-s 600
        ;;
      mpi.inside)
        sleeper_rank=0
        # 6 s late: long enough to be seen asleep on a loaded host, shorter than the others'
        # wait for rank 0's verdict (2 x 8 s + 1 s).
        startup=8
        run=("$nmesh" run --tp 2 --backend mpi --startup-timeout-s "$startup")
        set -- -np 1 "${run[@]}" --fault-late-s 6 : -np 3 "${run[@]}"
        ;;
    esac
    setsid "$mpirun_wrapper" "$@" >"$log" 2>&1 &
    ;;
  store.before | store.inside)
    run=("$nmesh" run --tp 2 --backend gloo --startup-timeout-s "$startup" --store "file://$dir")
    # The ranks, with torchrun's environment, all in the session of the shell that starts them.
    if [ "$case_name" = store.before ]; then
      setsid bash -c 'for r in 0 1 2; do RANK=$r WORLD_SIZE=4 "$@" & done
        RANK=3 WORLD_SIZE=4 bash -c '"'"'kill -STOP $$; exec "$@"'"'"' stop_first "$@" & wait' \
        _ "${run[@]}" >"$log" 2>&1 &
    else
      setsid bash -c 'RANK=0 WORLD_SIZE=4 "$@" --fault-late-s 3 &
        for r in 1 2 3; do RANK=$r WORLD_SIZE=4 "$@" & done; wait' _ "${run[@]}" >"$log" 2>&1 &
    fi
    ;;
  *)
    echo "usage: startup_stopped.sh MPIRUN_WRAPPER NMESH mpi.before_init|mpi.late|mpi.inside|store.before|store.inside" >&2
    exit 2
    ;;
esac
job=$!
check_session "$job" || exit 1

# A process of session $1 in state T (stopped), or nothing yet.
stopped_pid() {
  ps -o pid=,stat= -s "$1" | awk '$2 ~ /^T/ { print $1; exit }'
}

# Find the victim at its point.
found() {
  kill -0 "$job" 2>/dev/null || fail "the job ended before rank $victim_rank was stopped"
}
case "$case_name" in
  *.before_init | store.before)
    for _ in $(seq 1 600); do  # up to 60 s
      victim=$(stopped_pid "$job")
      [ -n "$victim" ] && break
      found
      sleep 0.1
    done
    ;;
  mpi.late | mpi.inside)
    if ! wchan_works; then
      echo "startup_stopped $case_name: SKIP: /proc/PID/wchan does not show sleeps on this kernel"
      exit 77
    fi
    sleeper=""
    for _ in $(seq 1 600); do  # up to 60 s of MPI start
      [ -n "$sleeper" ] || sleeper=$(rank_pid "$job" "$sleeper_rank")
      [ -n "$sleeper" ] && asleep "$sleeper" && break
      found
      sleep 0.1
    done
    [ -n "$sleeper" ] || fail "rank $sleeper_rank never started"
    victim=$(rank_pid "$job" "$victim_rank")
    ;;
  store.inside)
    for _ in $(seq 1 3000); do  # up to 60 s
      [ -e "$dir/startup%2F$victim_rank" ] && break
      found
      sleep 0.02
    done
    [ -e "$dir/startup%2F$victim_rank" ] || fail "rank $victim_rank never posted its start-up record"
    victim=$(rank_pid "$job" "$victim_rank")
    ;;
esac
[ -n "$victim" ] || fail "rank $victim_rank was not found"
kill -STOP "$victim"
start=$(date +%s%N)
[ "$case_name" = store.inside ] && [ -e "$dir/startup%2Fverdict" ] &&
  fail "rank 0 had already given its verdict (the stop came too late)"
grep -q "nmesh: verified\|nmesh: error" "$log" &&
  fail "the job had already got past the point (the stop came too late)"
echo "startup_stopped $case_name: stopped rank $victim_rank (pid $victim)"

# The others end (under mpirun: the whole job) within the deadline.
case "$case_name" in
  mpi.before_init) limit=$((60 + 30)) ;;  # MPI_Init is bounded at 60 s at least
  *) limit=$((2 * startup + 1 + 20)) ;;   # rank 0's wait is 2 x the deadline + 1 s, then slack
esac
others_ended() {
  local pid
  for pid in $(pgrep -s "$job" -x nmesh); do
    [ "$pid" != "$victim" ] && return 1
  done
  return 0
}
for ((i = 0; i < limit * 10; ++i)); do
  others_ended && break
  sleep 0.1
done
end=$(date +%s%N)
took_ms=$(((end - start) / 1000000))
took="$((took_ms / 1000)).$(printf '%03d' $((took_ms % 1000)))"
others_ended || fail "the other ranks were still running ${limit} s after the stop"
echo "startup_stopped $case_name: the other ranks ended ${took} s after the stop"

case "$case_name" in
  mpi.before_init) want="MPI did not start within 1m.*is stopped" ;;
  mpi.late) want="start-up: rank 3 of 4 did not arrive within ${startup}s \\(late, stopped or dead" ;;
  # Rank 0 meets the others once more after the agreement (job::MeetAfterAgreement), at least
  # 10 s (kMinStartupTimeout) after it: before that meeting the others hung in MPI_Comm_dup.
  mpi.inside) want="start-up: rank 3 of 4 did not come back from the agreement within" ;;
  store.before) want="rank 3 of 4 did not arrive at the store file://$dir within ${startup}s" ;;
  # After the agreement the ranks meet again in the gloo world's rendezvous, at least 10 s.
  store.inside) want="rank 3 never arrived within" ;;
esac
grep -Eq -- "$want" "$log" || fail "no line matches: $want"
grep -E -- "$want" "$log" | head -n 3

if [[ "$case_name" == store.* ]]; then
  # Nothing takes a store-launched rank with the job: continued, it must end by itself.
  # Nothing takes a store-launched rank with the job (as with a real launcher's worker): continued,
  # it normally ends by itself (its next wait is bounded); the launcher's part, killing it by PID,
  # is done here when it has not within 30 s, and said.
  kill -CONT "$victim"
  wait_job "$job" 30
  if [ -n "$rc" ]; then
    grep -E "rank $victim_rank:" "$log" | tail -n 1
  else
    echo "startup_stopped $case_name: NOTE: rank $victim_rank, continued, still ran 30 s later: killed by PID"
    kill -9 "$victim" 2>/dev/null
    wait_job "$job" 10
  fi
else
  wait_job "$job" 30
  [ -n "$rc" ] || fail "the launcher was still running 30 s after the other ranks ended"
  [ "$rc" -ne 0 ] || fail "the job exited 0"
fi
sleep 0.5
left=$(job_processes "$job" | tr '\n' ' ')
[ -z "$left" ] || fail "processes left behind: $left"
echo "startup_stopped $case_name: job exited with ${rc}; nothing left behind"
job=""
victim=""
exit 0
