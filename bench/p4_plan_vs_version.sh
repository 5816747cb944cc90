#!/usr/bin/env bash
# Start-to-exit cost of planning one rank of a 2^20-rank mesh, against `nmesh --version` (the
# floor: process start, dynamic loading, CLI parsing). Goal: ratio <= 1.5.
# Then peak RSS at world 2^20 vs 2^30, to show that memory does not grow with the world.
#
# Usage: bench/p4_plan_vs_version.sh [NMESH_BINARY] [RUNS] [RANK]
#   defaults: build/tools/nmesh, 200 runs of each command (interleaved), rank 12345
set -euo pipefail

nmesh=${1:-build/tools/nmesh}
runs=${2:-200}
rank=${3:-12345}
[[ -x "$nmesh" ]] || { echo "no executable at $nmesh (build first, or pass its path)" >&2; exit 2; }

plan_args=(plan --world 1048576 --pp 8 --tp 8 --cp 4 --ep 16 --rank "$rank")
version_args=(--version)

# Microseconds from bash's own clock: no extra process per sample.
now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }

"$nmesh" "${plan_args[@]}" >/dev/null  # fails loudly if the plan is invalid
"$nmesh" "${version_args[@]}" >/dev/null
plan_total=0
version_total=0
for ((i = 0; i < runs; ++i)); do
  t0=$(now_us); "$nmesh" "${plan_args[@]}" >/dev/null; t1=$(now_us)
  "$nmesh" "${version_args[@]}" >/dev/null; t2=$(now_us)
  plan_total=$((plan_total + t1 - t0))
  version_total=$((version_total + t2 - t1))
done

echo "runs: $runs each, interleaved"
echo "nmesh ${plan_args[*]}"
awk -v p="$plan_total" -v v="$version_total" -v n="$runs" 'BEGIN {
  printf "  plan     mean %8.1f us\n", p / n
  printf "  --version mean %7.1f us\n", v / n
  printf "  ratio plan / --version = %.3f (goal <= 1.5)\n", p / v
}'

if [[ -x /usr/bin/time ]]; then
  echo "peak RSS (/usr/bin/time -v), rank $rank, pp 8 tp 8 cp 4 ep 16:"
  rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk '/Maximum resident set size/ {print $6}'; }
  printf "  %-34s %8s KiB\n" "--version" "$(rss "$nmesh" --version)"
  for world in 1048576 1073741824; do
    for format in text json; do
      printf "  %-34s %8s KiB\n" "world $world --format $format" \
        "$(rss "$nmesh" plan --world "$world" --pp 8 --tp 8 --cp 4 --ep 16 --rank "$rank" \
             --format "$format")"
    done
  done
else
  echo "peak RSS: /usr/bin/time not found, skipped"
fi
