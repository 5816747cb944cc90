#!/usr/bin/env bash
# Mesh build over gloo, side by side (docs/PERFORMANCE.md, "Mesh build: nmesh vs PyTorch"): at
# world 8 with tp 2, cp 2, PyTorch's init_device_mesh plus NeMo's three flattens (36 process
# groups; bench/torch_mesh_build.py) against nmesh's PlanMesh + DeviceMesh::Create on a gloo world
# (bench/gloo_bench --mesh-reps), both started by scripts/launch.sh with torchrun's environment on
# this machine, both over gloo's TCP transport on 127.0.0.1. Prints each side's JSON line and the
# ratio of the medians (PyTorch / nmesh; goal >= 10).
#   bench/torch_mesh_build.sh [BUILD_DIR] [REPS]
# PYTHON (default python3) runs the PyTorch side. Without an importable torch it prints
# "SKIP: ..." and exits 77. Ends only the processes it starts (launch.sh's, by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
reps="${2:-5}"
python="${PYTHON:-python3}"
bench="$build/bench/gloo_bench"
[[ -x "$bench" ]] || { echo "build $bench first (--target gloo_bench)" >&2; exit 2; }
if ! why=$("$python" -c 'import torch, torch.distributed as d; assert d.is_gloo_available(), "no gloo"' 2>&1); then
  echo "SKIP: torch is not importable by $python (${why##*$'\n'}); install torch 2.15 (CPU) in a" \
    "throwaway venv and set PYTHON (docs/PERFORMANCE.md)" >&2
  exit 77
fi

port=""
for _ in $(seq 20); do
  candidate=$((20000 + RANDOM % 40000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then port=$candidate; break; fi
done
[[ -n "$port" ]] || { echo "torch_mesh_build: no free loopback port" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/nmesh_torch_mesh.XXXXXX")
trap 'rm -rf "$dir"' EXIT

torch_line=$(scripts/launch.sh -n 8 -- env MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" \
  GLOO_SOCKET_IFNAME=lo "$python" bench/torch_mesh_build.py --reps "$reps" | grep '^{')
nmesh_line=$(scripts/launch.sh -n 8 -- "$bench" "file://$dir" --rounds 0 --mesh-reps "$reps" |
  grep '^# gloo mesh build')
echo "$torch_line"
echo "$nmesh_line"
torch_ms=$(sed -n 's/.*"median_ms": \([0-9.e+-]*\).*/\1/p' <<<"$torch_line")
nmesh_ms=$(sed -n 's/.*median \([0-9.]*\) ms.*/\1/p' <<<"$nmesh_line")
awk -v t="$torch_ms" -v n="$nmesh_ms" 'BEGIN {
  printf "# mesh build at world 8, tp 2, cp 2: PyTorch %.2f ms, nmesh %.2f ms (medians): ratio %.1fx (goal >= 10x)\n", t, n, t / n }'
