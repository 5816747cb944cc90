#!/usr/bin/env bash
# Many chaos trials of `nmesh soak` (tests/reliability/soak_chaos.sh runs each), and the
# distribution of what a recovery took:
#   scripts/chaos.sh --trials N --kind kill|stop --launch store|mpi [--np 8] [--tp 2]
#                    [--timeout-s 2] [--seconds D] [--seed S] [--build DIR] [--log FILE]
# kill: SIGKILL to a random rank at a random step, --on-failure shrink; stop: SIGSTOP for longer than
# the timeout, --on-failure rebuild. Each trial's soak runs D seconds (default timeout + 6). Trial i uses seed S + i (default S: the time), printed, so a
# failing trial can be run again alone. A store launch meets at a redis-server this script starts on
# a free loopback port (tests/cli/with_redis.sh) and stops at the end.
# Prints, per trial, soak_chaos.sh's last line; then the counts (ok, failed, hangs, trials where the
# survivors disagreed) and, over the trials that recovered, median, p90 and max of:
#   since_fault  from the fault (the signal) to the last survivor's next completed step
#   resume       from a survivor's error to its next completed step (the slowest survivor)
#   detect       from the fault to the slowest survivor's error (its timeout or the peer lost)
#   agree        the survivors' meeting (RecoveryEvent::agree_seconds, slowest survivor)
#   rebuild      making the new world and meshes (RecoveryEvent::rebuild_seconds, slowest)
# Exit 0 when every trial passed, 1 otherwise.
set -u
cd "$(dirname "$0")/.."
trials=10 kind=kill launch=store np=8 tp=2 timeout_s=2 seconds="" seed="" build=build log=""
while [[ $# -gt 0 ]]; do
  [[ $# -ge 2 ]] || { echo "chaos: $1 needs a value" >&2; exit 2; }
  case "$1" in
    --trials) trials="$2" ;; --kind) kind="$2" ;; --launch) launch="$2" ;; --np) np="$2" ;;
    --tp) tp="$2" ;; --timeout-s) timeout_s="$2" ;; --seed) seed="$2" ;; --build) build="$2" ;;
    --log) log="$2" ;; --seconds) seconds="$2" ;;
    *) echo "chaos: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
[[ "$trials" =~ ^[1-9][0-9]*$ ]] || { echo "chaos: --trials must be a positive integer" >&2; exit 2; }
[[ "$kind" == kill || "$kind" == stop ]] || { echo "chaos: --kind kill|stop" >&2; exit 2; }
[[ "$launch" == store || "$launch" == mpi ]] || { echo "chaos: --launch store|mpi" >&2; exit 2; }
seed="${seed:-$(date +%s)}"
seconds="${seconds:-$((timeout_s + 6))}"
[[ "$seed" =~ ^[0-9]+$ ]] || { echo "chaos: --seed must be a non-negative integer" >&2; exit 2; }
nmesh="$build/tools/nmesh"
checker="$build/tests/reliability/soak_report_check"
for f in "$nmesh" "$checker"; do
  [[ -x "$f" ]] || { echo "chaos: $f not built (cmake --build $build)" >&2; exit 2; }
done
# A store launch needs a store: run again under with_redis.sh, once for every trial.
if [[ "$launch" == store && -z "${NMESH_TEST_REDIS_URL:-}" ]]; then
  exec tests/cli/with_redis.sh "$0" --trials "$trials" --kind "$kind" --launch "$launch" \
    --np "$np" --tp "$tp" --timeout-s "$timeout_s" --seconds "$seconds" --seed "$seed" \
    --build "$build" --log "$log"
fi
echo "chaos: $trials trial(s), kind $kind, launch $launch, np $np, tp $tp, timeout ${timeout_s} s, soak ${seconds} s, seeds $seed..$((seed + trials - 1))"

results=$(mktemp)
trap 'rm -f "$results"' EXIT
ok=0 failed=0 hangs=0 disagreed=0
for ((i = 0; i < trials; i++)); do
  s=$((seed + i))
  err=$(mktemp)
  tests/reliability/soak_chaos.sh --nmesh "$nmesh" --checker "$checker" --kind "$kind" \
    --launch "$launch" --np "$np" --seed "$s" --tp "$tp" --timeout-s "$timeout_s" --seconds "$seconds" \
    --store "${NMESH_TEST_REDIS_URL:-}" --mpirun scripts/mpirun.sh >"$err.out" 2>"$err"
  rc=$?
  line=$(tail -n 1 "$err.out")
  rm -f "$err.out"
  echo "$line"
  [[ -n "$log" ]] && { echo "$line" >>"$log"; [[ $rc -ne 0 ]] && cat "$err" >>"$log"; }
  grep -q "disagree on recovery" "$err" && disagreed=$((disagreed + 1))
  case $rc in
    0) ok=$((ok + 1)); echo "$line" >>"$results" ;;
    3) hangs=$((hangs + 1)); tail -n 40 "$err" >&2 ;;
    *) failed=$((failed + 1)); tail -n 40 "$err" >&2 ;;
  esac
  rm -f "$err"
done

# median, p90 and max of the values of `key` over the passing trials.
stats() {
  local key="$1"
  sed -n "s/.* $key=\\([-0-9.]*\\).*/\\1/p" "$results" | sort -g | awk -v key="$key" '
    { v[NR] = $1 }
    END {
      if (NR == 0) { printf "  %-12s (no trials)\n", key; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      p = int(0.9 * NR + 0.999999); if (p < 1) p = 1
      printf "  %-12s median %6.3f s  p90 %6.3f s  max %6.3f s  (%d trials)\n", key, m, v[p], v[NR], NR
    }'
}
echo "chaos: $ok ok, $failed failed, $hangs hang(s), $disagreed with disagreeing survivors, of $trials"
stats since_fault
stats resume_max
stats detect_max
stats agree_max
stats rebuild_max
[[ $ok -eq $trials ]]
