#!/usr/bin/env bash
# Mesh build time (`nmesh run` build_seconds: DeviceMesh::Create on the slowest rank) at np 8 on
# 1, 2 and 4 simulated hosts (tests/multihost/hosts.sh: network namespaces on one machine, TCP
# between hosts, shared memory inside one), interleaved in one session, as ratios to one host.
# Needs root (network namespaces).
#
# Usage: bench/multihost_build.sh [NMESH_BINARY] [ROUNDS] [NMESH RUN FLAGS...]
#   defaults: build/tools/nmesh, 7 rounds, --tp 2 --cp 2
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
nmesh=$(realpath "${1:-build/tools/nmesh}")
rounds=${2:-7}
shift 2 || true
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(--tp 2 --cp 2)
export MH_SLOTS=8
exec "$here/tests/multihost/hosts.sh" 4 -- bash -c '
  nmesh=$1 rounds=$2
  shift 2
  declare -A layouts=([1]="10.213.0.1:8" [2]="10.213.0.1:4,10.213.0.2:4"
                      [4]="10.213.0.1:2,10.213.0.2:2,10.213.0.3:2,10.213.0.4:2")
  for ((r = 0; r < rounds; ++r)); do
    for h in 1 2 4; do
      s=$("$MH_MPIRUN" -np 8 -host "${layouts[$h]}" "$nmesh" run "$@" --backend mpi --format json \
          2> /dev/null | grep -o "\"build_seconds\":[0-9.e-]*" | cut -d: -f2)
      echo "$h $s"
    done
  done > "$MH_DIR/times"
  for h in 1 2 4; do
    sorted=$(awk -v h=$h "\$1 == h {print \$2}" "$MH_DIR/times" | sort -g)
    n=$(echo "$sorted" | wc -l)
    med=$(echo "$sorted" | sed -n "$(((n + 1) / 2))p")
    eval "med$h=$med"
    echo "hosts $h: median build_seconds $med over $n runs ($(echo $sorted))"
  done
  awk -v a="$med1" -v b="$med2" -v c="$med4" "BEGIN {
    printf \"ratio 2 hosts / 1 host = %.2f, 4 hosts / 1 host = %.2f\\n\", b / a, c / a }"
' bash "$nmesh" "$rounds" "${flags[@]}"
