#!/usr/bin/env bash
# Inside tests/multihost/hosts.sh: a store-launched job (no mpirun, no MPI) across the hosts. A
# redis-server runs in the switch namespace (10.213.0.254, reachable from every host); each host
# starts its ranks itself, as Kubernetes or torchrun would, with RANK, WORLD_SIZE, LOCAL_RANK and
# LOCAL_WORLD_SIZE, rank r on host r mod HOSTS (mpirun's --map-by node), and gloo listening on the
# host's eth0. Rank 0's `nmesh run --format json` is checked with multihost_check like the mpirun
# jobs. The server and every rank are ended by PID on the way out.
#
#   store_run.sh NMESH CHECKER NP SHAPE PLACEMENT [NMESH RUN FLAGS...]
set -uo pipefail
nmesh=$1 checker=$2 np=$3 shape=$4 placement=$5
shift 5
: "${MH_SWITCH_NS:?run me under tests/multihost/hosts.sh}"
command -v redis-server > /dev/null || { echo "SKIP: multihost store: no redis-server"; exit 77; }
read -r -a hosts <<< "$MH_HOSTS"
nhosts=${#hosts[@]}
per_host=$(( (np + nhosts - 1) / nhosts ))
pids=()
redis_pid=""
finish() {
  for pid in "${pids[@]}" $redis_pid; do kill -TERM "$pid" 2> /dev/null; done
  wait 2> /dev/null
}
trap finish EXIT

# Protected mode off: the server is reachable only inside this test's namespaces.
ip netns exec "$MH_SWITCH_NS" redis-server --bind 10.213.0.254 --port 6379 --save '' --protected-mode no \
  --appendonly no --dir "$MH_DIR" > "$MH_DIR/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 50); do
  ip netns exec "$MH_SWITCH_NS" bash -c '(exec 3<>/dev/tcp/10.213.0.254/6379) 2>/dev/null' && break
  sleep 0.1
done

for ((r = 0; r < np; ++r)); do
  h=$((r % nhosts))
  out="$MH_DIR/rank$r.out"
  ip netns exec "${hosts[$h]}" unshare --uts -- sh -c 'hostname "$0" && exec "$@"' "${hosts[$h]}" \
    env -u OMPI_COMM_WORLD_SIZE -u PMI_SIZE -u SLURM_NTASKS RANK=$r WORLD_SIZE=$np \
    LOCAL_RANK=$((r / nhosts)) LOCAL_WORLD_SIZE=$per_host GLOO_SOCKET_IFNAME=eth0 \
    "$nmesh" run "$@" --backend gloo --store redis://10.213.0.254:6379/mh --placement "$placement" \
    --startup-timeout-s 30 --format json > "$out" 2> "$MH_DIR/rank$r.err" &
  pids+=($!)
done
worst=0
for pid in "${pids[@]}"; do
  wait "$pid"
  rc=$?
  ((rc > worst)) && worst=$rc
done
pids=()
cat "$MH_DIR/rank0.out"
cat "$MH_DIR"/rank*.err >&2
if [ "$worst" -ne 0 ]; then
  echo "store_run: a rank exited with $worst" >&2
  exit 1
fi
"$checker" --hosts "$MH_HOSTS" --slots "$MH_SLOTS" --map-by node --shape "$shape" \
  --placement "$placement" --json "$MH_DIR/rank0.out" --stderr "$MH_DIR/rank0.err"
