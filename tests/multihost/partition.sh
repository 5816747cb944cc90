#!/usr/bin/env bash
# Inside tests/multihost/hosts.sh 2: a network partition between the hosts during
# `nmesh bench --timeout-s T`. Once the bench runs its cross-host tp groups (launched round-robin,
# every tp pair spans both hosts), host 1's link to the bridge goes down. Every nmesh rank on both
# sides must then time out, print the timeout naming the axis, and exit: no nmesh process may be
# left on either host. The ranks' output also goes to one file per rank (mpirun --output-filename),
# written by each host's daemon: what the cut-off host's ranks print cannot reach mpirun until the
# link heals. (The hang guard waits up to T + 30 s; it bounds a hang, it times nothing.)
# Open MPI's launcher itself keeps waiting for the unreachable daemon; the harness ends it.
#
#   partition.sh NMESH T
set -uo pipefail
nmesh=$1 timeout_s=$2
: "${MH_MPIRUN:?run me under tests/multihost/hosts.sh}"
err="$MH_DIR/bench.err"
"$MH_MPIRUN" -np 8 --map-by node --output-filename "$MH_DIR/ranks" "$nmesh" bench --tp 2 --cp 2 --backend mpi --axes tp \
  --timeout-s "$timeout_s" -b 64K -e 64K -n 1000000 -w 1 > "$MH_DIR/bench.out" 2> "$err" &
launcher=$!

ranks_left() {
  local n=0 ns pid
  for ns in "${MH_PREFIX}h0" "${MH_PREFIX}h1"; do
    for pid in $(ip netns pids "$ns"); do
      [ "$(cat "/proc/$pid/comm" 2> /dev/null)" = nmesh ] && n=$((n + 1))
    done
  done
  echo "$n"
}

# The bench has started measuring once every rank runs and rank 0 printed its backend.
for ((i = 0; i < 300; ++i)); do
  grep -q "nmesh: bench: backend" "$err" 2> /dev/null && [ "$(ranks_left)" -eq 8 ] && break
  kill -0 "$launcher" 2> /dev/null || break
  sleep 0.1
done
if ! grep -q "nmesh: bench: backend" "$err"; then
  cat "$err" >&2
  echo "partition: the bench did not start" >&2
  exit 1
fi
sleep 1
ip -n "$MH_SWITCH_NS" link set v1 down
echo "partition: host 1 cut off; waiting for every rank to time out (--timeout-s $timeout_s)"
guard=$(((timeout_s + 30) * 10))
for ((i = 0; i < guard; ++i)); do
  [ "$(ranks_left)" -eq 0 ] && break
  sleep 0.1
done
cat "$err" >&2
find "$MH_DIR/ranks" -type f -name stderr -size +0 | sort | while read -r f; do
  echo "--- $f" >&2
  cat "$f" >&2
done
left=$(ranks_left)
rc=0
if [ "$left" -ne 0 ]; then
  echo "partition: $left nmesh rank(s) still running $((timeout_s + 30)) s after the cut" >&2
  rc=1
fi
for ((r = 0; r < 8; ++r)); do
  # Through mpirun, or in the rank's own file (written by its host's daemon: the only copy of
  # what the ranks of a cut-off host printed).
  if ! grep -rqs "nmesh: error: rank $r: all_reduce on axis 'tp' timed out after $timeout_s s" \
    "$err" "$MH_DIR/ranks"; then
    echo "partition: rank $r did not report the timeout on tp" >&2
    rc=1
  fi
done
if kill -0 "$launcher" 2> /dev/null; then
  echo "partition: every rank is gone; mpirun still waits for host 1's daemon (ended by the harness)"
fi
[ "$rc" -eq 0 ] && echo "partition: every rank on both hosts timed out, reported tp and exited"
exit "$rc"
