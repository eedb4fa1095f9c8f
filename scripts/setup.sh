#!/usr/bin/env bash
# Installs the Debian packages CushionCache C++ builds and runs against; with the
# argument "reliability", also clang and its sanitizer and libFuzzer runtimes
# (scripts/reliability.sh). Idempotent and non-interactive: packages already present
# are left alone.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libtorch-dev
  libopenblas0-pthread   # without it Torch falls back to reference BLAS (~25x slower matmul)
  libfmt-dev libyaml-cpp-dev catch2 nlohmann-json3-dev libpcre2-dev libcli11-dev
  libdnnl-dev            # oneDNN: the CPU INT8 GEMM (AVX-512 VNNI)
  libgloo-dev            # headers of the Gloo process group LibTorch links (multi-process search)
)
if [ "${1:-}" = "reliability" ]; then
  packages+=(clang-14 libclang-rt-14-dev llvm-14)  # llvm-14: llvm-symbolizer for sanitizer reports
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
