#!/usr/bin/env bash
# Configures and builds the project into build/ (Release). Extra arguments go to the
# CMake configure step, e.g. scripts/build.sh -DCC_BUILD_BENCHMARKS=OFF.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$root/build" -j "$jobs"
