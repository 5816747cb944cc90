#!/usr/bin/env bash
# tests/cli/with_dir.sh CMD [ARGS...]
# Runs CMD with every "@DIR@" in its arguments replaced by a fresh temporary directory (a file://
# store's), removed afterwards. Exits with CMD's exit code.
set -u
dir=$(mktemp -d "${TMPDIR:-/tmp}/nmesh_store_dir.XXXXXX")
trap 'rm -rf "$dir"' EXIT
args=()
for a in "$@"; do args+=("${a//@DIR@/$dir}"); done
"${args[@]}"
