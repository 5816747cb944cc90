#!/usr/bin/env bash
# Start-to-exit cost of placing a 2^20-rank mesh on hosts without MPI (`nmesh plan --hosts H
# --ranks-per-host R --placement pack`, which reports which groups stay inside a host), against
# `nmesh --version` (the floor: process start, dynamic loading, CLI parsing). Goal: ratio <= 1.5.
#
# Usage: bench/p6_placement_plan_vs_version.sh [NMESH_BINARY] [RUNS]
#   defaults: build/tools/nmesh, 200 runs of each command (interleaved)
set -euo pipefail

nmesh=${1:-build/tools/nmesh}
runs=${2:-200}
[[ -x "$nmesh" ]] || { echo "no executable at $nmesh (build first, or pass its path)" >&2; exit 2; }

mesh=(--world 1048576 --pp 8 --tp 8 --cp 4 --ep 16)
hosts=(--hosts 131072 --ranks-per-host 8)
now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }

measure() {
  local label=$1
  shift
  "$nmesh" "$@" > /dev/null  # fails loudly if the plan is invalid
  local total=0 version=0 t0 t1 t2
  for ((i = 0; i < runs; ++i)); do
    t0=$(now_us); "$nmesh" "$@" > /dev/null; t1=$(now_us)
    "$nmesh" --version > /dev/null; t2=$(now_us)
    total=$((total + t1 - t0))
    version=$((version + t2 - t1))
  done
  echo "$label: nmesh $*"
  awk -v p="$total" -v v="$version" -v n="$runs" 'BEGIN {
    printf "  plan      mean %8.1f us\n  --version mean %8.1f us\n  ratio plan / --version = %.3f (goal <= 1.5)\n", p / n, v / n, p / v
  }'
}

echo "runs: $runs each, interleaved with --version"
measure "launched by slot, pack" plan "${mesh[@]}" "${hosts[@]}" --placement pack
measure "launched by slot, pack, json" plan "${mesh[@]}" "${hosts[@]}" --placement pack --format json
measure "launched by node, as-launched" plan "${mesh[@]}" "${hosts[@]}" --map-by node
measure "launched by node, pack (closed form, no rank list)" plan "${mesh[@]}" "${hosts[@]}" \
  --map-by node --placement pack
measure "launched by node, pack, domains of 64 ranks" plan "${mesh[@]}" "${hosts[@]}" \
  --map-by node --ranks-per-domain 64 --placement pack
measure "domains of 64 ranks (8 hosts), by slot, pack" plan "${mesh[@]}" \
  "${hosts[@]}" --ranks-per-domain 64 --placement pack
