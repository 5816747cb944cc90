#!/usr/bin/env bash
# skipped_collective.sh MPIRUN_WRAPPER NMESH NP TIMEOUT_S SKIP_RANK GROUP AXIS STRIDE SIZE [FLAGS...]
# Runs `nmesh run FLAGS --timeout-s TIMEOUT_S --fault-skip SKIP_RANK:GROUP`: rank SKIP_RANK leaves
# out the verification's collectives on its GROUP communicator. Checks that every other member of
# that group reports, within TIMEOUT_S + 1 s of the skip, the timeout naming the axis (AXIS, the
# communicator's name), the operation and the timeout, and the watchdog's diagnosis naming
# SKIP_RANK and the operation's sequence number:
#   nmesh: error: rank P: all_gather on axis 'AXIS' timed out after T s (rank k of n): timeout on
#   axis 'AXIS' (group [...]): rank SKIP_RANK never entered all_gather #N (...)
# that rank 0 prints one summary that follows the waits across axes to SKIP_RANK:
#   nmesh: error: summary: rank P waits in all_gather #N (...) on axis 'AXIS' (group [...]), which
#   rank SKIP_RANK never entered; ...
# and that the job then ends non-zero within 30 s with no process left behind.
#
# The group is given independently of nmesh, as arithmetic: its members are spaced STRIDE apart
# and there are SIZE of them, so the group of rank R is
#   (R mod STRIDE) + floor(R / (STRIDE * SIZE)) * STRIDE * SIZE + k * STRIDE,  k = 0 .. SIZE-1
# (tp: stride 1; with tp=2, the flattened dp_shard_cp: stride 2). Times are taken when each
# stderr line reaches this script; the skipping rank's notice marks the start.
set -u
. "$(dirname "$0")/wait_job.sh"
mpirun_wrapper="$1" nmesh="$2" np="$3" timeout_s="$4" skip="$5" group="$6" axis="$7"
stride="$8" size="$9"
shift 9
log=$(mktemp)
out=$(mktemp)
trap 'rm -f "$log" "$out"' EXIT

block=$((stride * size))
base=$(((skip % stride) + (skip / block) * block))
peers=()
for ((k = 0; k < size; ++k)); do
  member=$((base + k * stride))
  [ "$member" -ne "$skip" ] && peers+=("$member:$k")
done
[ "${#peers[@]}" -gt 0 ] || { echo "skipped_collective: group of one, nobody to time out" >&2; exit 1; }

stamp() {  # prefixes each line with the time it arrived (seconds, microseconds)
  while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done
}
start=$EPOCHREALTIME
setsid "$mpirun_wrapper" -np "$np" "$nmesh" run "$@" --timeout-s "$timeout_s" \
  --fault-skip "$skip:$group" >"$out" 2> >(stamp >"$log") &
job=$!  # also the id of the job's session (wait_job.sh)
check_session "$job" || exit 1

wait_job "$job" 30
end=$EPOCHREALTIME
sleep 0.5  # the stamping subshell drains the last lines
fail=0
if [ -z "$rc" ]; then
  echo "skipped_collective: job still running 30 s after it started" >&2
  kill_job "$job"
  fail=1
fi
left=$(job_processes "$job" | tr '\n' ' ')
if [ -n "$left" ]; then
  echo "skipped_collective: processes left behind: $left" >&2
  kill_job "$job"
  fail=1
fi

# Seconds between two $EPOCHREALTIME stamps, to the millisecond.
seconds_between() { awk -v a="${1/,/.}" -v b="${2/,/.}" 'BEGIN { printf "%.3f", b - a }'; }

notice=$(grep -F "nmesh: fault injection: rank $skip skips" "$log" | head -n 1)
if [ -z "$notice" ]; then
  echo "skipped_collective: rank $skip never reported its skip" >&2
  fail=1
else
  t0=${notice%% *}
  worst=0
  for peer in "${peers[@]}"; do
    p=${peer%%:*} k=${peer##*:}
    want="nmesh: error: rank $p: all_gather on axis '$axis' timed out after $timeout_s s (rank $k of $size)"
    line=$(grep -F -- "$want" "$log" | head -n 1)
    if [ -z "$line" ]; then
      echo "skipped_collective: rank $p did not report: $want" >&2
      fail=1
      continue
    fi
    # The watchdog's diagnosis on the same line: the skipping rank, by its rank in the job, never
    # entered the operation, named with its sequence number.
    culprit="timeout on axis '$axis' \\(group \\[[0-9, ]+\\]\\): rank $skip never entered all_gather #[0-9]+"
    if ! printf '%s\n' "$line" | grep -Eq -- "$culprit"; then
      echo "skipped_collective: rank $p did not name rank $skip as the culprit: $line" >&2
      fail=1
    fi
    after=$(seconds_between "$t0" "${line%% *}")
    echo "skipped_collective: rank $p reported DeadlineExceeded ${after} s after the skip"
    if awk -v a="$after" -v t="$timeout_s" 'BEGIN { exit !(a > t + 1) }'; then
      echo "skipped_collective: rank $p reported after ${after} s, more than timeout + 1 s" >&2
      fail=1
    fi
    worst=$(awk -v a="$after" -v w="$worst" 'BEGIN { print (a > w ? a : w) }')
  done
  echo "skipped_collective: slowest report ${worst} s after the skip (timeout ${timeout_s} s);" \
    "job exited ${rc:-?} $(seconds_between "$t0" "$end") s after the skip" \
    "($(seconds_between "$start" "$end") s in all); processes left: ${left:-none}"
fi
summaries=$(grep -c -F "nmesh: error: summary: " "$log")
summary_want="waits in all_gather #[0-9]+ \\([^)]*\\) on axis '$axis' \\(group \\[[0-9, .]+\\]( \\([0-9]+ ranks\\))?\\), which ranks? ([0-9]+, )*$skip(, [0-9]+)* never entered"
if [ "$summaries" -ne 1 ]; then
  echo "skipped_collective: $summaries summary lines, wanted one (from rank 0)" >&2
  fail=1
elif ! grep -F "nmesh: error: summary: " "$log" | grep -Eq -- "$summary_want"; then
  echo "skipped_collective: the summary does not follow the waits to rank $skip; wanted: $summary_want" >&2
  fail=1
else
  echo "skipped_collective: $(grep -F "nmesh: error: summary: " "$log" | cut -d' ' -f2-)"
fi
if [ -n "$rc" ] && [ "$rc" -eq 0 ]; then
  echo "skipped_collective: job exited 0 although a rank skipped a collective" >&2
  fail=1
fi
if [ "$fail" -ne 0 ]; then
  echo "---- stderr of the job (arrival time, line) ----" >&2
  cat "$log" >&2
fi
exit "$fail"
