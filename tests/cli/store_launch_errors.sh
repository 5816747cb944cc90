#!/usr/bin/env bash
# tests/cli/store_launch_errors.sh NMESH LAUNCH REDIS_URL
# Bad input to a store launch (run under with_redis.sh, which gives REDIS_URL and
# NMESH_TEST_REDIS_PID): each case must end within its deadline with the exit code and the message
# given (a fixed string), and leave no process of its own behind. Cases that need the server run
# before the one that stops it.
set -u
nmesh="$1"
launch="$2"
redis="$3"
failures=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nmesh_store_errors.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# expect NAME CODE TEXT -- COMMAND...: runs COMMAND (bounded by `timeout 60`), checks its exit
# code and that its output holds TEXT, and that no nmesh process is left.
expect() {
  local name="$1" code="$2" text="$3"
  shift 4
  local start=$SECONDS output rc
  # Every process of the case carries this token in its environment (inherited), so that the
  # check below finds the case's own processes only, not another test's beside it.
  local token="$$.$RANDOM.$name"
  output=$(NMESH_TEST_CASE_TOKEN="$token" timeout -k 5 60 "$@" 2>&1)
  rc=$?
  local took=$((SECONDS - start))
  if [[ $rc -ne $code ]] || ! grep -qF -- "$text" <<<"$output"; then
    echo "FAIL $name: exit $rc (expected $code) after ${took}s; expected text: $text"
    printf '%s\n' "$output" | sed 's/^/    /'
    failures=$((failures + 1))
  else
    echo "ok   $name: exit $rc after ${took}s: $(grep -F -m1 -- "$text" <<<"$output")"
  fi
  # Every process of the case has ended.
  local left="" environ
  for environ in /proc/[0-9]*/environ; do
    if tr '\0' '\n' 2>/dev/null <"$environ" | grep -qxF -- "NMESH_TEST_CASE_TOKEN=$token"; then
      left+="${environ//[^0-9]/} "
    fi
  done
  if [[ -n "$left" ]]; then
    echo "FAIL $name: processes left behind: $left"
    failures=$((failures + 1))
  fi
}

run=(run --tp 2 --backend gloo --startup-timeout-s 3)

expect wrong_scheme 2 "http://127.0.0.1:1/x" -- \
  env RANK=0 WORLD_SIZE=2 "$nmesh" "${run[@]}" --store http://127.0.0.1:1/x
expect unreachable 1 "redis://127.0.0.1:1" -- \
  env RANK=0 WORLD_SIZE=2 "$nmesh" "${run[@]}" --store redis://127.0.0.1:1/x
expect no_rank 2 "RANK is not set (WORLD_SIZE is)" -- \
  env -u RANK WORLD_SIZE=2 "$nmesh" "${run[@]}" --store "$redis/norank"
expect no_environment 2 "neither RANK and WORLD_SIZE" -- \
  env -u RANK -u WORLD_SIZE -u SLURM_PROCID "$nmesh" "${run[@]}" --store "$redis/noenv"
expect bad_world_size 2 "WORLD_SIZE='2x'" -- \
  env RANK=0 WORLD_SIZE=2x "$nmesh" "${run[@]}" --store "$redis/bad"
expect rank_outside_world 2 "RANK='2' is not an integer from 0 to 1" -- \
  env RANK=2 WORLD_SIZE=2 "$nmesh" "${run[@]}" --store "$redis/outside"
expect store_from_environment 2 "NMESH_JOB_ID='a b'" -- \
  env RANK=0 WORLD_SIZE=2 NMESH_STORE="file://$tmp/envstore" NMESH_JOB_ID="a b" \
  "$nmesh" "${run[@]}"
# Rank 1 was given another WORLD_SIZE: rank 0 names both.
expect inconsistent_world_size 2 "ranks disagree on the world size: rank 0 was launched with WORLD_SIZE=2, rank 1 with WORLD_SIZE=3" -- \
  bash -c 'RANK=0 WORLD_SIZE=2 "$1" "${@:2}" & RANK=1 WORLD_SIZE=3 "$1" "${@:2}"; r1=$?; wait $!; r0=$?; exit $((r0 > r1 ? r0 : r1))' \
  _ "$nmesh" "${run[@]}" --store "$redis/ws"
expect missing_rank 1 "rank 1 of 2 did not arrive at the store $redis/late within 3s" -- \
  env RANK=0 WORLD_SIZE=2 "$nmesh" "${run[@]}" --store "$redis/late"
expect first_job 0 "verified" -- \
  "$launch" -n 2 -- "$nmesh" "${run[@]}" --store "$redis/shared"
expect two_jobs_one_prefix 2 "is claimed twice at the store $redis/shared" -- \
  "$launch" -n 2 -- "$nmesh" "${run[@]}" --store "$redis/shared"
expect two_processes_one_rank 2 "rank 0 is claimed twice" -- \
  bash -c 'RANK=0 WORLD_SIZE=2 "$1" "${@:2}" & sleep 1; RANK=0 WORLD_SIZE=2 "$1" "${@:2}"; r1=$?; wait $!; exit $r1' \
  _ "$nmesh" "${run[@]}" --store "$redis/dup"
# The store goes away while rank 0 waits for rank 1: a runtime failure naming the store, within
# the start-up deadline.
expect store_disappears 1 "$redis" -- \
  bash -c 'RANK=0 WORLD_SIZE=2 "$1" "${@:3}" & p=$!; sleep 1; kill -TERM "$2"; wait $p' \
  _ "$nmesh" "$NMESH_TEST_REDIS_PID" run --tp 2 --backend gloo --startup-timeout-s 20 \
  --store "$redis/gone"

if [[ $failures -ne 0 ]]; then
  echo "store_launch_errors: $failures failures"
  exit 1
fi
echo "store_launch_errors: every case as expected"
