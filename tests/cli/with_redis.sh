#!/usr/bin/env bash
# tests/cli/with_redis.sh CMD [ARGS...]
# Starts a redis-server on a free 127.0.0.1 port in a fresh temporary directory (no persistence),
# runs CMD with every "@REDIS@" in its arguments replaced by redis://127.0.0.1:PORT, then stops
# the server by its PID and removes the directory. CMD also gets NMESH_TEST_REDIS_URL and
# NMESH_TEST_REDIS_PID (a test may stop the server itself, to see a store disappear). Exits with
# CMD's exit code; 77 (ctest's skip code: SKIP_RETURN_CODE) when no redis-server is installed.
# Never signals a process it did not start.
set -u
if ! command -v redis-server >/dev/null 2>&1; then
  echo "with_redis: SKIP: no redis-server on PATH (scripts/install_deps.sh installs it)" >&2
  exit 77
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/nmesh_redis.XXXXXX")
pid=""
stop() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  fi
  wait 2>/dev/null
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=""
for _ in $(seq 20); do
  candidate=$((20000 + RANDOM % 40000))
  # Taken already (by anything): try another.
  if (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then continue; fi
  redis-server --bind 127.0.0.1 --port "$candidate" --save '' --appendonly no \
    --dir "$dir" --protected-mode yes >"$dir/redis.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then port=$candidate; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n "$port" ]] && break
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  pid=""
done
if [[ -z "$port" ]]; then
  echo "with_redis: could not start redis-server on a free loopback port" >&2
  cat "$dir/redis.log" >&2 2>/dev/null
  exit 1
fi

url="redis://127.0.0.1:$port"
args=()
for a in "$@"; do args+=("${a//@REDIS@/$url}"); done
NMESH_TEST_REDIS_URL="$url" NMESH_TEST_REDIS_PID="$pid" "${args[@]}"
exit $?
