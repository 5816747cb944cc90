#!/usr/bin/env bash
# mpirun with the flags the installed MPI flavour needs on a small shared machine:
#   Open MPI: --oversubscribe (8 ranks on 2 cores), root allowed (OMPI_ALLOW_RUN_AS_ROOT*), and
#             a shared-memory transport that works in containers.
#   MPICH:    nothing extra.
# NMESH_MPIEXEC overrides the launcher (CMake passes the one it found). All arguments pass through.
set -euo pipefail
launcher="${NMESH_MPIEXEC:-mpirun}"
flags=()
if [ "$(id -u)" -eq 0 ]; then
  # Open MPI refuses root unless told twice; MPICH ignores these.
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
if "$launcher" --version 2>&1 | grep -qE "Open MPI|OpenRTE|open-mpi"; then
  flags+=(--oversubscribe --bind-to none)
  # No InfiniBand here; keep Open MPI from probing for it and warning on every rank.
  export OMPI_MCA_btl="${OMPI_MCA_btl:-self,vader,tcp}"
  export OMPI_MCA_pml="${OMPI_MCA_pml:-ob1}"
  export OMPI_MCA_btl_vader_single_copy_mechanism="${OMPI_MCA_btl_vader_single_copy_mechanism:-none}"
  export OMPI_MCA_mpi_yield_when_idle="${OMPI_MCA_mpi_yield_when_idle:-1}"
fi
exec "$launcher" "${flags[@]}" "$@"
