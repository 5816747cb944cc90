#!/usr/bin/env bash
# Installs nmesh's build and test dependencies from Debian packages, only those missing.
# Idempotent: a second run installs nothing and says so.
#
#   scripts/install_deps.sh            # Open MPI (default)
#   NMESH_MPI=mpich scripts/install_deps.sh
#   scripts/install_deps.sh clang libclang-rt-dev   # extra packages (scripts/fuzz.sh does this)
#   NMESH_DEPS=main scripts/install_deps.sh         # only what the library and the `nmesh` tool
#                                                  # need (scripts/run_main.sh): no test,
#                                                  # benchmark or plotting packages
#
# libgloo-dev and libhiredis-dev: the gloo backend and the store rendezvous (redis://, file://);
# redis-server: the tests of a store launch start their own on a loopback port.
# gnuplot-nox draws `nmesh bench --plot` (its pngcairo terminal, or png where cairo is missing).
# CUDA and NCCL are not installed here: they come with the machine (under the CUDA root) and are
# optional at configure time (NMESH_WITH_NCCL=AUTO).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libabsl-dev libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
  libgloo-dev libhiredis-dev
)
case "${NMESH_DEPS:-all}" in
  all) packages+=(libgtest-dev libgmock-dev libbenchmark-dev gnuplot-nox redis-server) ;;
  main) ;;
  *) echo "install_deps: NMESH_DEPS must be all or main, got '${NMESH_DEPS}'" >&2; exit 2 ;;
esac
case "${NMESH_MPI:-openmpi}" in
  openmpi) packages+=(libopenmpi-dev openmpi-bin) ;;
  mpich) packages+=(libmpich-dev mpich) ;;
  *) echo "install_deps: NMESH_MPI must be openmpi or mpich, got '${NMESH_MPI}'" >&2; exit 2 ;;
esac
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present, nothing to install"
  exit 0
fi

echo "install_deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install_deps: done"
