#!/usr/bin/env bash
# The whole test suite: install missing dependencies, build, run every ctest entry (unit tests,
# MPI tests at np 1, 2, 4 and 8, the install/consumer check, the CLI end-to-end tests).
#   scripts/test.sh                # build/ with the default options
#   NMESH_SANITIZE=address,undefined scripts/test.sh   # the same under ASan+UBSan, in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=build
extra=()
if [ -n "${NMESH_SANITIZE:-}" ]; then
  build_dir="build-$(echo "$NMESH_SANITIZE" | tr ',' '-')"
  extra+=("-DNMESH_SANITIZE=$NMESH_SANITIZE")
fi
scripts/build.sh "$build_dir" "${extra[@]}"
cd "$build_dir"
ctest --output-on-failure --timeout 600 -j "$(nproc)"
