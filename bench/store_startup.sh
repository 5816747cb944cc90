#!/usr/bin/env bash
# Time for N processes of a store launch to pass the start-up agreement, N = 8, 64, 256 (or the
# sizes given), over Redis (a redis-server on a free loopback port, tests/cli/with_redis.sh) and
# over a directory (file://). Each size runs REPEATS times (default 3) on a fresh prefix; the line
# printed per run is rank 0's {"world", "agree_seconds", "open_seconds"} plus the launcher's wall
# time (process start to the last exit).
#   bench/store_startup.sh [BUILD_DIR] [N...]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
shift || true
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(8 64 256)
repeats="${REPEATS:-3}"
bench="$build/bench/store_startup_bench"
[[ -x "$bench" ]] || { echo "build $bench first (cmake --build $build --target store_startup_bench)" >&2; exit 2; }

measure() {  # URL_BASE
  local base="$1" n r t0 t1 line
  for n in "${sizes[@]}"; do
    for ((r = 0; r < repeats; r++)); do
      t0=$(date +%s.%N)
      line=$(scripts/launch.sh -n "$n" -- "$bench" "$base/n${n}_r${r}_$$")
      t1=$(date +%s.%N)
      echo "${line%\}}, \"store\": \"${base%%:*}\", \"wall_seconds\": $(echo "$t1 - $t0" | bc)}"
    done
  done
}

export -f measure
export sizes_list="${sizes[*]}"
tests/cli/with_redis.sh bash -c "$(declare -f measure); sizes=($sizes_list); repeats=$repeats; bench=$bench; measure @REDIS@"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
measure "file://$dir"
