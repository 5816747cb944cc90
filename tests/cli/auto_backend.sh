#!/usr/bin/env bash
# tests/cli/auto_backend.sh HAVE_NCCL LOCAL_RANKS CMD [ARGS...]
# Runs CMD with every "@AUTO_BACKEND@" in its arguments replaced by the backend `--backend auto`
# must choose for LOCAL_RANKS ranks on this host, worked out without nmesh: "nccl" when nmesh was
# built with NCCL (HAVE_NCCL is ON/1/TRUE) and at least LOCAL_RANKS CUDA devices are visible (so
# every local rank has one), "gloo" otherwise. Visible devices: the GPUs `nvidia-smi -L` lists (none
# without nvidia-smi), limited by CUDA_VISIBLE_DEVICES when it is set (its entries up to the first
# that is not an index or a GPU-/MIG- UUID, as CUDA reads it). Exits with CMD's exit code.
set -u
if [[ $# -lt 3 ]]; then
  echo "usage: auto_backend.sh HAVE_NCCL LOCAL_RANKS CMD [ARGS...]" >&2
  exit 2
fi
have_nccl="$1" local_ranks="$2"
shift 2
gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
fi
if [[ -n "${CUDA_VISIBLE_DEVICES+set}" ]]; then
  listed=0
  IFS=',' read -r -a entries <<<"$CUDA_VISIBLE_DEVICES"
  for e in "${entries[@]}"; do
    [[ "$e" =~ ^[0-9]+$ || "$e" == GPU-* || "$e" == MIG-* ]] || break
    listed=$((listed + 1))
  done
  ((listed < gpus)) && gpus=$listed
fi
backend=gloo
case "${have_nccl^^}" in
  ON | 1 | TRUE | YES) ((gpus >= local_ranks)) && backend=nccl ;;
esac
echo "auto_backend: $gpus CUDA device(s) visible, NCCL built: $have_nccl; expecting $backend" >&2
args=()
for a in "$@"; do args+=("${a//@AUTO_BACKEND@/$backend}"); done
"${args[@]}"
