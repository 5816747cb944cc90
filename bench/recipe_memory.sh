#!/usr/bin/env bash
# Peak memory of parsing hostile recipes: writes one recipe of each shape below (about MB MiB each,
# default 62: under the 64 MiB a recipe file may have) to a temporary directory, runs
#   /usr/bin/time -v NMESH plan --config FILE --world 8
# on each and prints the peak RSS, its ratio to the file size, whether it is within 8 x size +
# 32 MiB (issue 24's bound), and the CPU seconds (user + system: wall time says little on a shared
# machine). A benchmark, not a test: nothing here is asserted.
#   bench/recipe_memory.sh [NMESH] [MB]       # default build/tools/nmesh, 62
# Shapes (all under `distributed:`, which nmesh reads, unless said otherwise):
#   flow_list    tp_plan: [1,1,1,...]                      (2 bytes per value)
#   block_list   tp_plan:\n  - 1\n  - 1 ...
#   flow_pairs   tp_plan: [[1],[1],...]                   (nested: two nodes per 4 bytes)
#   flow_maps    tp_plan: [{a: 1},{a: 1},...]
#   many_keys    tp_plan: {k0: v, k1: v, ...}             (a map: read, refused past 100,000 keys)
#   aliases      tp_plan: &a [1]  then  x: [*a,*a,...]    (an alias is 3 bytes)
#   laughs       nine levels of ten aliases each (1e9 values once expanded; a small file)
#   deep         [[[[...]]]] 20,000 deep (yaml-cpp's depth guard refuses it; a small file)
#   long_scalar  tp_plan: xxxx... one scalar of the whole size
#   ignored_keys data: {k0: v, ...} a section nmesh does not read
#   anchors      - &a0 1\n- &a1 1 ...                     (refused past 10,000 anchors)
set -euo pipefail
cd "$(dirname "$0")/.."
nmesh=${1:-build/tools/nmesh}
mb=${2:-62}
[[ -x $nmesh ]] || { echo "usage: $0 [NMESH] [MB]: not an executable: $nmesh" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "$0: needs /usr/bin/time (Debian package time)" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bytes=$((mb * 1024 * 1024))

# repeat UNIT until about `bytes` bytes (less the head and tail), in 1 MiB chunks.
repeat() {
  awk -v unit="$1" -v total="$2" 'BEGIN {
    chunk = unit; while (length(chunk) < 1048576) chunk = chunk chunk;
    n = int(length(chunk) / length(unit)); chunk = substr(chunk, 1, n * length(unit));
    for (written = 0; written + length(chunk) <= total; written += length(chunk)) printf "%s", chunk;
    while (written + length(unit) <= total) { printf "%s", unit; written += length(unit) }
  }'
}
# numbered lines: FORMAT with %d from 0 until about `bytes` bytes.
numbered() {
  awk -v format="$1" -v total="$2" 'BEGIN {
    for (i = 0; written < total; i++) { line = sprintf(format, i); printf "%s", line; written += length(line) }
  }'
}

body=$((bytes - 64))
{ printf 'distributed:\n  tp_plan: [1'; repeat ',1' "$body"; printf ']\n'; } > "$dir/flow_list.yaml"
{ printf 'distributed:\n  tp_plan:\n'; repeat '  - 1\n' "$body"; } \
  > "$dir/block_list.yaml"
{ printf 'distributed:\n  tp_plan: [[1]'; repeat ',[1]' "$body"; printf ']\n'; } > "$dir/flow_pairs.yaml"
{ printf 'distributed:\n  tp_plan: [{a: 1}'; repeat ',{a: 1}' "$body"; printf ']\n'; } \
  > "$dir/flow_maps.yaml"
{ printf 'distributed:\n  tp_plan:\n'; numbered '    k%d: v\n' "$body"; } > "$dir/many_keys.yaml"
{ printf 'distributed:\n  tp_plan: &a [1]\n  x: [*a'; repeat ',*a' "$body"; printf ']\n'; } \
  > "$dir/aliases.yaml"
{
  printf 'l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n'
  for i in 1 2 3 4 5 6 7 8; do
    printf 'l%d: &l%d [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d]\n' "$i" "$i" \
      $((i - 1)) $((i - 1)) $((i - 1)) $((i - 1)) $((i - 1)) $((i - 1)) $((i - 1)) $((i - 1)) \
      $((i - 1)) $((i - 1))
  done
  printf 'distributed:\n  tp_plan: *l8\n  activation_checkpointing_scope: *l8\n'
} > "$dir/laughs.yaml"
{ printf 'distributed:\n  tp_plan: '; repeat '[' 20000; repeat ']' 20000; printf '\n'; } > "$dir/deep.yaml"
{ printf 'distributed:\n  tp_plan: '; repeat 'x' "$body"; printf '\n'; } > "$dir/long_scalar.yaml"
{ printf 'data:\n'; numbered '  k%d: v\n' "$body"; printf 'distributed:\n  tp_size: 2\n'; } \
  > "$dir/ignored_keys.yaml"
{ printf 'data:\n'; numbered '  - &a%d 1\n' "$body"; printf 'distributed: {}\n'; } \
  > "$dir/anchors.yaml"

printf '%-13s %9s %10s %7s %12s %8s %5s  %s\n' shape file_MiB peak_MiB ratio bound_MiB cpu_s exit \
  "first line of stderr"
for file in "$dir"/*.yaml; do
  shape=$(basename "$file" .yaml)
  size=$(stat -c %s "$file")
  code=0
  /usr/bin/time -v "$nmesh" plan --config "$file" --world 8 > /dev/null 2> "$dir/err" || code=$?
  peak_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$dir/err")
  user=$(sed -n 's/.*User time (seconds): //p' "$dir/err")
  system=$(sed -n 's/.*System time (seconds): //p' "$dir/err")
  message=$(grep -v '^\s' "$dir/err" | grep -v '^Command' | head -1 | cut -c1-150 || true)
  awk -v shape="$shape" -v size="$size" -v kb="$peak_kb" -v cpu="$user $system" -v code="$code" \
    -v message="$message" 'BEGIN {
      split(cpu, parts, " "); seconds = parts[1] + parts[2];
      peak = kb / 1024; file = size / 1048576; bound = 8 * file + 32;
      printf "%-13s %9.2f %10.1f %7.2f %12.1f %8.1f %5d  %s%s\n", shape, file, peak,
        (kb * 1024) / size, bound, seconds, code, (peak <= bound ? "" : "OVER BOUND: "), message
    }'
done
