#!/usr/bin/env bash
# The GPU truth of issue 13, in one go, on a machine with an NVIDIA GPU (one rank is enough: NCCL
# allows one rank per GPU). Builds what it needs, then runs:
#   1. the conformance suite on the NCCL backend (tests/comm/conformance_test.cc, np 1),
#   2. the NCCL backend's own tests (tests/comm/nccl_communicator_test.cc, np 1),
#   3. bench/gpu_check: overlap of an async all_reduce with compute on the engine's stream, CUDA
#      graph capture and replay of a collective, nmesh / raw NCCL all_reduce bandwidth,
#   4. a store launch without MPI at world 1: `nmesh run --backend nccl --store file://DIR` with
#      RANK=0 WORLD_SIZE=1 (NCCL's unique id through the store; comm/nccl CreateWorld(store, ...)),
# and prints a summary. Exit status: 0 when every check passed, 1 otherwise, 2 on bad usage or
# when there is no GPU (nothing can be checked).
#
#   scripts/gpu_check.sh                  # build/ (configured with NCCL if not yet configured)
#   NMESH_BUILD_DIR=build-gpu scripts/gpu_check.sh
#   NMESH_GPU_CHECK_BYTES=268435456 scripts/gpu_check.sh   # bandwidth message size (64 MiB)
#
# Record the summary, `nvidia-smi -L` and `build/tools/nmesh --version` in docs/NCCL.md.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
build_dir=${NMESH_BUILD_DIR:-build}
bytes=${NMESH_GPU_CHECK_BYTES:-67108864}
log_dir=$(mktemp -d "${TMPDIR:-/tmp}/nmesh_gpu_check.XXXXXX")

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check.sh: no NVIDIA GPU visible (nvidia-smi -L failed); run this on a GPU machine" >&2
  exit 2
fi
echo "== machine"
nvidia-smi -L
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

echo "== build ($build_dir)"
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNMESH_WITH_NCCL=ON ||
    exit 1
fi
if ! cmake --build "$build_dir" -j"$(nproc)" --target comm_conformance_test comm_nccl_test gpu_check \
  nmesh; then
  echo "gpu_check.sh: build failed (is $build_dir configured with NCCL? -DNMESH_WITH_NCCL=ON)" >&2
  exit 1
fi
"$build_dir/tools/nmesh" --version 2>/dev/null || true

declare -a names verdicts
record() { names+=("$1"); verdicts+=("$2"); }

echo "== 1. conformance suite on NCCL (np 1)"
if NCCL_DEBUG=WARN scripts/mpirun.sh -np 1 "$build_dir/tests/comm/comm_conformance_test" \
  --gtest_filter='*/nccl' 2>&1 | tee "$log_dir/conformance.log"; then
  if grep -q "SKIPPED" "$log_dir/conformance.log"; then
    record conformance "FAIL (tests skipped on a GPU machine: see $log_dir/conformance.log)"
  else
    record conformance "PASS ($(grep -c '\[       OK \]' "$log_dir/conformance.log") tests)"
  fi
else
  record conformance "FAIL (see $log_dir/conformance.log)"
fi

echo "== 2. NCCL backend tests (np 1)"
if NCCL_DEBUG=WARN scripts/mpirun.sh -np 1 "$build_dir/tests/comm/comm_nccl_test" 2>&1 |
  tee "$log_dir/nccl_test.log"; then
  # Only the no-GPU test may skip on a GPU machine.
  if grep "SKIPPED" "$log_dir/nccl_test.log" | grep -qv "NcclNoGpuTest"; then
    record nccl_backend "FAIL (GPU tests skipped on a GPU machine: see $log_dir/nccl_test.log)"
  else
    record nccl_backend "PASS"
  fi
else
  record nccl_backend "FAIL (see $log_dir/nccl_test.log)"
fi

echo "== 3. overlap, CUDA graph, bandwidth"
"$build_dir/bench/gpu_check" --bytes="$bytes" 2>&1 | tee "$log_dir/gpu_check.log"
gpu_rc=${PIPESTATUS[0]}
for check in overlap graph bandwidth; do
  line=$(grep "^RESULT $check " "$log_dir/gpu_check.log" | head -1)
  if [ -z "$line" ]; then
    record "$check" "FAIL (no result; see $log_dir/gpu_check.log)"
  else
    record "$check" "${line#"RESULT $check "}"
  fi
done

echo "== 4. store launch, no MPI (world 1, NCCL through a file:// store)"
store_dir=$(mktemp -d "${TMPDIR:-/tmp}/nmesh_gpu_store.XXXXXX")
# Not under mpirun: the launcher's variables must not leak in from the caller's environment.
if env -u OMPI_COMM_WORLD_SIZE -u OMPI_COMM_WORLD_RANK -u PMI_SIZE -u PMI_RANK -u PMIX_RANK \
  -u SLURM_PROCID -u SLURM_NTASKS RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 LOCAL_WORLD_SIZE=1 \
  NCCL_DEBUG=WARN timeout 300 "$build_dir/tools/nmesh" run --backend nccl \
  --store "file://$store_dir" 2>&1 | tee "$log_dir/store_launch.log" &&
  grep -q "nccl" "$log_dir/store_launch.log" && [ -e "$store_dir" ]; then
  record store_launch "PASS"
else
  record store_launch "FAIL (see $log_dir/store_launch.log)"
fi
rm -rf "$store_dir"

echo
echo "== summary (logs in $log_dir)"
status=0
for i in "${!names[@]}"; do
  printf '%-14s %s\n' "${names[$i]}" "${verdicts[$i]}"
  case "${verdicts[$i]}" in FAIL*) status=1 ;; esac
done
grep -q "NOT overlapped" "$log_dir/gpu_check.log" && status=1
[ "$gpu_rc" -eq 0 ] || status=1
echo "overall: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
