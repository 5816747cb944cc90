#!/usr/bin/env bash
# Runs a command against N simulated hosts on this machine, then removes them.
#
#   tests/multihost/hosts.sh HOSTS -- COMMAND [ARGS...]
#
# Each host is a network namespace with its own host name (a UTS namespace entered per launch)
# and one address, 10.213.0.(i+1)/24, on a bridge that lives in a switch namespace also created
# here. mpirun runs inside the switch namespace (10.213.0.254) and starts one Open MPI daemon per
# host through an rsh agent that enters the host's namespaces, so ranks on different hosts talk
# over TCP across the bridge and ranks on one host over shared memory. Nothing is configured in
# the caller's namespace, and no traffic leaves the namespaces created here.
#
# COMMAND runs with:
#   MH_MPIRUN    a launcher: "$MH_MPIRUN -np 8 --map-by node nmesh run ..." runs across the hosts
#                (Open MPI flags: hostfile, rsh agent, no tree spawn, ob1 over tcp,vader,self, the
#                tcp and oob interfaces limited to the test subnet)
#   MH_HOSTS     the host names, space-separated, in hostfile order (host i is "${MH_PREFIX}h<i>")
#   MH_PREFIX    this run's unique name prefix (namespaces, host names)
#   MH_SWITCH_NS the switch namespace; "ip -n $MH_SWITCH_NS link set v<i> down" cuts host i off
#   MH_DIR       a scratch directory (removed afterwards)
#   MH_SLOTS     slots per host in the hostfile (default 4; set it before calling to change it)
#
# With MH_RECORD=FILE set by the caller, the namespaces' names and inode numbers are written to
# FILE ("name inode" per line) once made, so that the caller can check afterwards that no process
# is left in them (tests/multihost/leftovers.sh).
#
# Exit status: COMMAND's, or 77 (with the reason on stdout) when namespaces cannot be made here
# (not root, no `ip netns`, no bridge or veth support, no Open MPI): ctest reports a skip.
#
# Clean-up runs on every exit, including INT and TERM: every process left in the namespaces is
# killed, the namespaces are deleted (their links with them) and the scratch directory removed.
# A run killed with SIGKILL cannot clean up after itself; the next run removes the namespaces of
# runs whose process is gone (their names carry the owner's pid).
set -uo pipefail

readonly kSkip=77
readonly kNamePrefix=nmeshmh
readonly kSubnet=10.213.0
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

skip() {
  echo "SKIP: multihost: $*"
  exit "$kSkip"
}

if [ $# -lt 3 ] || [ "$2" != "--" ]; then
  echo "usage: $0 HOSTS -- COMMAND [ARGS...]" >&2
  exit 2
fi
hosts=$1
shift 2
case "$hosts" in
  '' | *[!0-9]*) echo "$0: HOSTS must be a number, got '$hosts'" >&2; exit 2 ;;
esac
if [ "$hosts" -lt 1 ] || [ "$hosts" -gt 200 ]; then
  echo "$0: HOSTS must be between 1 and 200, got $hosts" >&2
  exit 2
fi

[ "$(id -u)" -eq 0 ] || skip "needs root to create network namespaces (running as uid $(id -u))"
command -v ip > /dev/null || skip "no 'ip' command (iproute2)"
command -v unshare > /dev/null || skip "no 'unshare' command (util-linux)"
launcher="${NMESH_MPIEXEC:-mpirun}"
"$launcher" --version 2>&1 | grep -qE "Open MPI|OpenRTE" ||
  skip "the launcher '$launcher' is not Open MPI (the rsh agent flags are Open MPI's)"

# Namespaces of earlier runs that were killed before they could clean up: their owner is gone.
for ns in $(ip netns list 2> /dev/null | awk '{print $1}' | grep "^${kNamePrefix}[0-9]*x" || true); do
  owner=${ns#"$kNamePrefix"}
  owner=${owner%%x*}
  if ! kill -0 "$owner" 2> /dev/null; then
    for pid in $(ip netns pids "$ns" 2> /dev/null); do kill -KILL "$pid" 2> /dev/null; done
    ip netns delete "$ns" 2> /dev/null
  fi
done

readonly prefix="${kNamePrefix}$$x"
readonly switch_ns="${prefix}sw"
work_dir=$(mktemp -d "${TMPDIR:-/tmp}/${prefix}.XXXXXX") || skip "cannot create a scratch directory"
created=()
child=

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$child" ]; then kill -TERM "$child" 2> /dev/null; fi
  # Processes first (mpirun, daemons, ranks), then the namespaces; deleting a host's namespace
  # deletes its end of the veth pair and with it the other end.
  local ns pid round
  for round in TERM KILL; do
    for ns in "${created[@]}"; do
      for pid in $(ip netns pids "$ns" 2> /dev/null); do kill "-$round" "$pid" 2> /dev/null; done
    done
    [ "$round" = TERM ] && sleep 0.2
  done
  for ns in "${created[@]}"; do ip netns delete "$ns" 2> /dev/null; done
  rm -rf "$work_dir"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

make_ns() {
  ip netns add "$1" 2> "$work_dir/err" || return 1
  created+=("$1")
  ip -n "$1" link set lo up
}

make_ns "$switch_ns" || skip "cannot create a network namespace: $(cat "$work_dir/err")"
ip -n "$switch_ns" link add br0 type bridge 2> "$work_dir/err" ||
  skip "cannot create a bridge in a namespace: $(cat "$work_dir/err")"
ip -n "$switch_ns" addr add "${kSubnet}.254/24" dev br0
ip -n "$switch_ns" link set br0 up
host_names=()
for ((i = 0; i < hosts; ++i)); do
  ns="${prefix}h$i"
  make_ns "$ns" || { echo "$0: cannot create namespace $ns: $(cat "$work_dir/err")" >&2; exit 1; }
  # Both ends are created inside the test's namespaces: v<i> on the switch, eth0 on the host.
  ip link add "v$i" netns "$switch_ns" type veth peer name eth0 netns "$ns" 2> "$work_dir/err" ||
    skip "cannot create a veth pair between namespaces: $(cat "$work_dir/err")"
  ip -n "$ns" addr add "${kSubnet}.$((i + 1))/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$switch_ns" link set "v$i" master br0 up
  host_names+=("$ns")
done

# The hostfile names hosts by address; the agent maps an address back to its namespace and
# runs the daemon's command there, under the host's name, through a shell as ssh would.
slots="${MH_SLOTS:-4}"
: > "$work_dir/hostfile"
for ((i = 0; i < hosts; ++i)); do echo "${kSubnet}.$((i + 1)) slots=$slots" >> "$work_dir/hostfile"; done
cat > "$work_dir/agent" << EOF
#!/usr/bin/env bash
host=\$1
shift
case "\$host" in
  ${kSubnet}.*) index=\$((\${host##*.} - 1)) ;;
  *) echo "multihost agent: unknown host '\$host'" >&2; exit 255 ;;
esac
if [ "\$index" -lt 0 ] || [ "\$index" -ge $hosts ]; then
  echo "multihost agent: no host at '\$host'" >&2
  exit 255
fi
name="${prefix}h\$index"
exec ip netns exec "\$name" unshare --uts -- sh -c "hostname \$name && \$*"
EOF
cat > "$work_dir/mpirun" << EOF
#!/usr/bin/env bash
exec ip netns exec "$switch_ns" unshare --uts -- sh -c 'hostname "\$0" && exec "\$@"' \
  "${prefix}launch" "$repo_root/scripts/mpirun.sh" --hostfile "$work_dir/hostfile" \
  --mca plm_rsh_agent "$work_dir/agent" --mca plm_rsh_no_tree_spawn 1 \
  --mca pml ob1 --mca btl tcp,vader,self \
  --mca btl_tcp_if_include ${kSubnet}.0/24 --mca oob_tcp_if_include ${kSubnet}.0/24 "\$@"
EOF
chmod +x "$work_dir/agent" "$work_dir/mpirun"

if [ -n "${MH_RECORD:-}" ]; then
  for ns in "${created[@]}"; do echo "$ns $(stat -L -c %i "/run/netns/$ns")"; done > "$MH_RECORD"
fi
export MH_MPIRUN="$work_dir/mpirun" MH_HOSTS="${host_names[*]}" MH_PREFIX="$prefix"
export MH_SWITCH_NS="$switch_ns" MH_DIR="$work_dir" MH_SLOTS="$slots"
"$@" &
child=$!
wait "$child"
rc=$?
child=
exit "$rc"
