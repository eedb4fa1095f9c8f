#!/usr/bin/env bash
# Configures and builds the project in Release. Extra arguments go to the CMake configure
# step, e.g. scripts/build.sh -DCC_BUILD_BENCHMARKS=OFF.
#   scripts/build.sh               Debian's LibTorch 1.13 (CPU), into build/
#   scripts/build.sh --torch pip   PyTorch 2.11's LibTorch from .venv (scripts/setup.sh python),
#                                  built with CUDA: the kernels, the ops layer and NCCL; into
#                                  build-torch211/ (it runs on the CPU; no GPU needed to build)
# BUILD_DIR overrides the folder, TARGETS (space-separated) builds only those targets.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
torch=debian
if [ "${1:-}" = "--torch" ]; then
  torch=${2:?"--torch takes debian or pip"}
  shift 2
fi
config=()
case "$torch" in
  debian) build_dir=${BUILD_DIR:-$root/build} ;;
  pip)
    build_dir=${BUILD_DIR:-$root/build-torch211}
    python=$root/.venv/bin/python
    [ -x "$python" ] || { echo "build.sh: $python is missing; run scripts/setup.sh python first" >&2; exit 2; }
    config=(-DCC_TORCH_PYTHON="$python")
    ;;
  *) echo "build.sh: --torch takes debian or pip, not '$torch'" >&2; exit 2 ;;
esac
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
# Paths under the checkout are hashed relative to it, so another clone of the same sources
# (CI's) hits the cache too.
export CCACHE_BASEDIR=$root
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" "${config[@]}" "$@"
targets=()
for t in ${TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build_dir" -j "$jobs" "${targets[@]}"
