#!/usr/bin/env bash
# The main job: install missing dependencies, build, then build and verify an 8-rank mesh from an
# example recipe on the MPI backend.
#   scripts/run_main.sh [RECIPE]
set -euo pipefail
cd "$(dirname "$0")/.."
recipe="${1:-examples/fsdp2_tp2_cp2.yaml}"
# Only what the main job needs: the libraries and the `nmesh` tool (no tests, no benchmarks).
NMESH_DEPS=main NMESH_BUILD_TARGETS=nmesh \
  scripts/build.sh build -DNMESH_BUILD_TESTS=OFF -DNMESH_BUILD_BENCHMARKS=OFF
echo "+ mpirun -np 8 build/tools/nmesh run --config $recipe --backend mpi"
scripts/mpirun.sh -np 8 build/tools/nmesh run --config "$recipe" --backend mpi
