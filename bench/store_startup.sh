#!/usr/bin/env bash
# Time for N processes of a store launch to pass the start-up agreement, N = 8, 64, 256 (or the
# sizes given), over Redis (a redis-server on a free loopback port, tests/cli/with_redis.sh) and
# over a directory (file://). Each size runs REPEATS times (default 3), each on a fresh prefix;
# one JSON line per run: rank 0's {"world", "agree_seconds", "open_seconds"} (store_startup_bench)
# plus the store and the launcher's wall time (first process started to last exited).
#   bench/store_startup.sh [BUILD_DIR] [N...]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
shift || true
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(8 64 256)
repeats="${REPEATS:-3}"
bench="$build/bench/store_startup_bench"
[[ -x "$bench" ]] || { echo "build $bench first (--target store_startup_bench)" >&2; exit 2; }

measure() {  # URL_BASE STORE_KIND
  local base="$1" kind="$2" n r t0 t1 line
  for n in "${sizes[@]}"; do
    for ((r = 0; r < repeats; r++)); do
      t0=$(date +%s%N)
      line=$(scripts/launch.sh -n "$n" -- "$bench" "$base/n${n}_r${r}_$$")
      t1=$(date +%s%N)
      printf '%s, "store": "%s", "wall_seconds": %.3f}\n' "${line%\}}" "$kind" \
        "$(( (t1 - t0) / 1000000 ))e-3"
    done
  done
}

if [[ -n "${NMESH_STORE_STARTUP_REDIS:-}" ]]; then
  measure "$NMESH_STORE_STARTUP_REDIS" redis
  exit 0
fi
NMESH_STORE_STARTUP_REDIS=@REDIS@ tests/cli/with_redis.sh env \
  NMESH_STORE_STARTUP_REDIS=@REDIS@ REPEATS="$repeats" "$0" "$build" "${sizes[@]}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
measure "file://$dir" file
