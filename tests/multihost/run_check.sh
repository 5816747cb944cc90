#!/usr/bin/env bash
# Inside tests/multihost/hosts.sh: runs `nmesh run --format json` across the hosts and checks the
# report against the launcher's layout with multihost_check.
#
#   run_check.sh NMESH CHECKER NP MAP_BY SHAPE MOE PLACEMENT [NMESH RUN FLAGS...]
#
# MAP_BY is slot or node (mpirun --map-by), SHAPE the device mesh's shape (a,b,c,d,e), MOE the
# moe mesh's (ES,E) or "-" for none, PLACEMENT as-launched or pack (passed as --placement).
set -uo pipefail
nmesh=$1 checker=$2 np=$3 map_by=$4 shape=$5 moe=$6 placement=$7
shift 7
: "${MH_MPIRUN:?run me under tests/multihost/hosts.sh}"
out="$MH_DIR/run.json"
err="$MH_DIR/run.err"
"$MH_MPIRUN" -np "$np" --map-by "$map_by" "$nmesh" run "$@" --placement "$placement" \
  --format json > "$out" 2> "$err"
rc=$?
cat "$out"
cat "$err" >&2
if [ "$rc" -ne 0 ]; then
  echo "run_check: nmesh run exited with $rc" >&2
  exit 1
fi
moe_flags=()
[ "$moe" != "-" ] && moe_flags=(--moe "$moe")
"$checker" --hosts "$MH_HOSTS" --slots "$MH_SLOTS" --map-by "$map_by" --shape "$shape" \
  "${moe_flags[@]}" --placement "$placement" --json "$out" --stderr "$err"
