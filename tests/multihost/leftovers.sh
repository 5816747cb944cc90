#!/usr/bin/env bash
# Runs tests/multihost/hosts.sh with its arguments, then checks that it left nothing behind:
# none of its namespaces is still named, no process on the machine is still in one of them (by
# the namespace's inode), and its scratch directory is gone. Exits with hosts.sh's status (77:
# skipped), or 1 when something was left (naming it).
#
#   tests/multihost/leftovers.sh HOSTS -- COMMAND [ARGS...]
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
record=$(mktemp "${TMPDIR:-/tmp}/nmesh_multihost_record.XXXXXX")
trap 'rm -f "$record"' EXIT
# hosts.sh runs in the background so that its pid (its name prefix) is known here.
MH_RECORD="$record" "$here/hosts.sh" "$@" &
pid=$!
trap 'kill -TERM "$pid" 2> /dev/null; wait "$pid"; rm -f "$record"; exit 143' INT TERM
wait "$pid"
rc=$?
[ "$rc" -eq 77 ] && exit 77
left=0
while read -r name inode; do
  [ -n "$name" ] || continue
  if ip netns list | awk '{print $1}' | grep -qx "$name"; then
    echo "leftovers: namespace $name still exists" >&2
    left=1
  fi
  for ns in /proc/[0-9]*/ns/net; do
    if [ "$(stat -L -c %i "$ns" 2> /dev/null)" = "$inode" ]; then
      p=${ns#/proc/}
      p=${p%%/*}
      echo "leftovers: process $p ($(tr '\0' ' ' < "/proc/$p/cmdline" 2> /dev/null)) is still in $name" >&2
      left=1
    fi
  done
done < "$record"
if ls -d "${TMPDIR:-/tmp}/nmeshmh${pid}x."* > /dev/null 2>&1; then
  echo "leftovers: scratch directory ${TMPDIR:-/tmp}/nmeshmh${pid}x.* still exists" >&2
  left=1
fi
if [ ! -s "$record" ] && [ "$rc" -eq 0 ]; then
  echo "leftovers: hosts.sh recorded no namespaces" >&2
  left=1
fi
[ "$left" -eq 0 ] && echo "leftovers: none (namespaces, processes, scratch directory)"
[ "$rc" -ne 0 ] && exit "$rc"
exit "$left"
