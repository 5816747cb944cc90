#!/usr/bin/env bash
# launch_np.sh -np N CMD [ARGS...]
# scripts/launch.sh -n N -- CMD [ARGS...]: a store launch (torchrun's environment, no MPI) called
# the way the fault tests call mpirun, so that they run over a store with the same checks (the
# store itself is in ARGS: --backend gloo --store URL). Exits with launch.sh's exit code.
set -u
if [[ $# -lt 3 || "$1" != "-np" ]]; then
  echo "usage: launch_np.sh -np N CMD [ARGS...]" >&2
  exit 2
fi
n="$2"
shift 2
exec "$(dirname "$0")/../../scripts/launch.sh" -n "$n" -- "$@"
