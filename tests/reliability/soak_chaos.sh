#!/usr/bin/env bash
# soak_chaos.sh: one chaos trial of `nmesh soak`: the job loses a rank (kill) or has one frozen
# longer than its timeout (stop), and must go on without it, or with it once it wakes.
#
#   soak_chaos.sh --nmesh BIN --checker BIN --kind kill|stop|none --launch store|mpi --np N
#                 --seed S [--store URL] [--mpirun WRAPPER] [--tp T] [--timeout-s T]
#                 [--seconds D] [--policy P] [--keep DIR] [--expect-fail TEXT] [--quiet-s Q]
#
#   kill: SIGKILL to a random rank (seeded) once rank 0 has completed a random step; policy shrink.
#         Every survivor must complete (or be a spare), agree on dead = [victim] and on the new
#         world (N - tp: the victim's dp_shard slice is dropped, its other ranks are spares).
#   stop: SIGSTOP to a random rank at a random step, SIGCONT after timeout + 1.5 s; policy rebuild.
#         Every rank, the frozen one included, must complete with one rebuild, dead = [], world N.
#   none: no fault; every rank completes with no recovery.
# --quiet-s Q: --recovery-quiet-s Q (shrink: how long the meeting waits for survivors after the
#   last arrival; a survivor slower than that under load is counted dead).
# --expect-fail TEXT (store launch): the recovery must fail instead (a mesh that cannot shrink):
#   every survivor exits 1, says TEXT (a fixed string) on stderr and reports "failed".
# Store launch: the ranks are started here with RANK/WORLD_SIZE and meet at --store (a redis URL,
# a prefix of its own per trial); mpi: under --mpirun with the MPI backend. The job runs --seconds
# D (default timeout + 10) and --steps 1000000, so that the fault always falls inside it.
# Each trial checks the reports with --checker (soak_report_check), every survivor's exit code, and
# that no process of the trial is left (ended by PID if one is: a hang). Last line:
#   soak_chaos: seed=S kind=K launch=L np=N victim=V step=K result=ok|fail|hang <checker's numbers>
# Exit 0 ok, 1 a check failed, 3 a hang (a process still running at the deadline), 2 bad usage,
# 77 (a skip) under mpirun when the job layer says it has no MPI recovery channel.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/wait_job.sh"

nmesh="" checker="" kind="" launch="store" np=8 seed="" store="" mpirun="" tp=2 timeout_s=2
seconds="" policy="" keep="" expect_fail="" quiet_s=""
while [[ $# -gt 0 ]]; do
  [[ $# -ge 2 ]] || { echo "soak_chaos: $1 needs a value" >&2; exit 2; }
  case "$1" in
    --nmesh) nmesh="$2" ;; --checker) checker="$2" ;; --kind) kind="$2" ;;
    --launch) launch="$2" ;; --np) np="$2" ;; --seed) seed="$2" ;; --store) store="$2" ;;
    --mpirun) mpirun="$2" ;; --tp) tp="$2" ;; --timeout-s) timeout_s="$2" ;;
    --seconds) seconds="$2" ;; --policy) policy="$2" ;; --keep) keep="$2" ;;
    --expect-fail) expect_fail="$2" ;; --quiet-s) quiet_s="$2" ;;
    *) echo "soak_chaos: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
[[ -x "$nmesh" && -x "$checker" && "$seed" =~ ^[0-9]+$ && "$np" =~ ^[1-9][0-9]*$ ]] ||
  { echo "soak_chaos: need --nmesh, --checker, --seed and --np" >&2; exit 2; }
case "$kind" in
  kill) policy="${policy:-shrink}" ;; stop) policy="${policy:-rebuild}" ;;
  none) policy="${policy:-abort}" ;; *) echo "soak_chaos: --kind kill|stop|none" >&2; exit 2 ;;
esac
case "$launch" in
  store) [[ -n "$store" ]] || { echo "soak_chaos: --launch store needs --store URL" >&2; exit 2; } ;;
  mpi) [[ -n "$mpirun" ]] || { echo "soak_chaos: --launch mpi needs --mpirun" >&2; exit 2; } ;;
  *) echo "soak_chaos: --launch store|mpi" >&2; exit 2 ;;
esac
seconds="${seconds:-$((timeout_s + 10))}"

RANDOM=$seed
victim=$((RANDOM % np))
fault_step=$((3 + RANDOM % 15))
dir=$(mktemp -d "${TMPDIR:-/tmp}/nmesh_chaos.XXXXXX")
cleanup() { [[ -n "$keep" ]] && cp -r "$dir" "$keep/" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
mkdir "$dir/reports"
args=(soak --tp "$tp" --steps 1000000 --seconds "$seconds" --on-failure "$policy"
      --timeout-s "$timeout_s" --report-dir "$dir/reports" --progress)
[[ -n "$quiet_s" ]] && args+=(--recovery-quiet-s "$quiet_s")

pids=()
session=""
if [[ "$launch" == store ]]; then
  url="$store/chaos$seed.$$"
  for ((r = 0; r < np; r++)); do
    RANK=$r WORLD_SIZE=$np LOCAL_RANK=$r LOCAL_WORLD_SIZE=$np \
      "$nmesh" "${args[@]}" --backend gloo --store "$url" >"$dir/out$r" 2>"$dir/err$r" &
    pids+=($!)
  done
  victim_pid=${pids[$victim]}
  rank0_log="$dir/err0"
else
  setsid "$mpirun" -np "$np" "$nmesh" "${args[@]}" --backend mpi >"$dir/out0" 2>"$dir/err0" &
  session=$!
  check_session "$session" || { kill -9 "$session"; exit 1; }
  rank0_log="$dir/err0"
  victim_pid=""
fi

# Every process of the trial still running (by PID or by the launcher's session).
alive() {
  if [[ -n "$session" ]]; then job_processes "$session"; return; fi
  local p
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && echo "$p"; done
}
end_all() { local p; for p in $(alive); do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done; }

result=ok
fault_unix=""
if [[ "$kind" != none ]]; then
  # The fault falls once rank 0 has completed step `fault_step` (up to 60 s for the start-up).
  for _ in $(seq 600); do
    grep -q "^nmesh: soak: step $fault_step\$" "$rank0_log" 2>/dev/null && break
    sleep 0.1
  done
  if [[ -n "$session" ]]; then
    for p in $(pgrep -s "$session" -x nmesh); do
      r=$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | sed -n 's/^\(OMPI_COMM_WORLD_RANK\|PMI_RANK\)=//p' | head -n 1)
      [[ "$r" == "$victim" ]] && victim_pid=$p
    done
  fi
  if [[ -z "$victim_pid" ]] || ! kill -0 "$victim_pid" 2>/dev/null; then
    echo "soak_chaos: rank $victim is not running at step $fault_step" >&2
    result=fail
  else
    fault_unix=$(date +%s.%N)
    if [[ "$kind" == kill ]]; then
      kill -KILL "$victim_pid"
    else
      kill -STOP "$victim_pid"
      sleep "$(awk -v t="$timeout_s" 'BEGIN { print t + 1.5 }')"
      kill -CONT "$victim_pid"
    fi
  fi
fi

# Every process must end by the deadline.
deadline=$(( $(date +%s) + seconds + timeout_s * 4 + 60 ))
while [[ -n "$(alive)" && $(date +%s) -lt $deadline ]]; do sleep 0.2; done
left=$(alive | tr '\n' ' ')
if [[ -n "$left" ]]; then
  echo "soak_chaos: HANG: processes still running at the deadline: $left" >&2
  end_all
  result=hang
fi

# Exit codes: 0 on every survivor (spares included); the killed rank 137.
if [[ -n "$session" ]]; then
  wait "$session"
  code=$?
  [[ "$result" == ok && $code -ne 0 ]] && { echo "soak_chaos: mpirun exited $code" >&2; result=fail; }
else
  for ((r = 0; r < np; r++)); do
    wait "${pids[$r]}"
    code=$?
    if [[ "$kind" == kill && $r -eq $victim ]]; then
      [[ $code -eq 137 ]] || { echo "soak_chaos: the killed rank $r exited $code" >&2; result=fail; }
    elif [[ -n "$expect_fail" ]]; then
      if [[ $code -ne 1 ]] || ! grep -qF -- "$expect_fail" "$dir/err$r" ||
         ! grep -Eq '"status": *"failed"' "$dir/reports/rank$r.json" 2>/dev/null; then
        echo "soak_chaos: rank $r exited $code; expected 1, '$expect_fail' on stderr and a failed report" >&2
        result=fail
      fi
    elif [[ $code -ne 0 ]]; then
      echo "soak_chaos: rank $r exited $code" >&2
      result=fail
    fi
  done
fi

check=(--dir "$dir/reports" --np "$np")
spare_count=$((tp - 1))
case "$kind" in
  kill) check+=(--gone "$victim" --events 1 --action shrink --dead "$victim"
                --world-after $((np - tp)) --spares "$spare_count") ;;
  stop) check+=(--events 1 --action rebuild --dead "" --world-after "$np" --spares 0) ;;
  none) check+=(--events 0 --spares 0) ;;
esac
[[ -n "$fault_unix" ]] && check+=(--fault-unix-s "$fault_unix")
numbers="expected failure: $expect_fail"
if [[ -z "$expect_fail" ]]; then
  numbers=$("$checker" "${check[@]}")
  [[ $? -eq 0 ]] || { [[ "$result" == ok ]] && result=fail; }
fi
if [[ "$result" != ok ]]; then
  for ((r = 0; r < np; r++)); do
    echo "---- rank $r stderr (last lines) ----" >&2
    tail -n 15 "$dir/err$r" >&2 2>/dev/null
  done
fi
echo "soak_chaos: seed=$seed kind=$kind launch=$launch np=$np victim=$victim step=$fault_step result=$result $numbers"
case "$result" in ok) exit 0 ;; hang) exit 3 ;; *) exit 1 ;; esac
