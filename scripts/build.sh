#!/usr/bin/env bash
# Installs missing dependencies, then configures and builds nmesh.
#   scripts/build.sh [BUILD_DIR] [extra cmake -D options...]
# BUILD_DIR defaults to build/. Idempotent: a second run rebuilds only what changed.
# NMESH_BUILD_TARGETS="t1 t2" builds only those targets (and what they need); default: all.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-build}"
shift || true
scripts/install_deps.sh
# ccache, where installed, serves every checkout of the tree (paths relative to the checkout, the
# directory not hashed), so a second clone or a worktree rebuilds only what differs. Optional.
launcher=()
if command -v ccache >/dev/null 2>&1; then
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-true}"
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$build_dir" -G Ninja "${launcher[@]}" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" "$@"
# Two cores and about 1.5 GiB per C++ job: use every core.
targets=()
for t in ${NMESH_BUILD_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build_dir" -j "$(nproc)" "${targets[@]}"
