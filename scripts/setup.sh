#!/usr/bin/env bash
# Installs the system libraries Shardwise builds against, only when they are missing.
#   scripts/setup.sh          OpenBLAS, LAPACKE, zlib, pkg-config
#   scripts/setup.sh --mpi    the same, plus OpenMPI (libopenmpi-dev, openmpi-bin)
set -euo pipefail

need=()
have_header() { [ -e "/usr/include/$1" ] || [ -e "/usr/include/x86_64-linux-gnu/$1" ] || [ -e "/usr/include/aarch64-linux-gnu/$1" ]; }
pkg_ok() { pkg-config --exists "$1" 2>/dev/null; }

command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg_ok openblas || need+=(libopenblas-dev)
have_header lapacke.h || need+=(liblapacke-dev)
have_header zlib.h || need+=(zlib1g-dev)
if [ "${1:-}" = "--mpi" ]; then
    pkg_ok ompi-c || need+=(libopenmpi-dev)
    command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin)
fi

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi

echo "setup: installing ${need[*]}" >&2
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: apt-get is not available. Install these with your package manager: ${need[*]}" >&2
    echo "       (Debian/Ubuntu names; on Fedora: openblas-devel lapack-devel openmpi-devel)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "setup: not root and no password-less sudo. Run as root:" >&2
        echo "       apt-get install -y ${need[*]}" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "setup: done" >&2
