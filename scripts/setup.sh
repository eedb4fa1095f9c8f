#!/usr/bin/env bash
# Installs the Debian packages CushionCache C++ builds and runs against; with the
# argument "reliability", also clang and its sanitizer and libFuzzer runtimes
# (scripts/reliability.sh); with "python", also a virtual environment .venv/ in the
# checkout holding the pinned Python packages of tools/requirements.txt (PyTorch 2.11,
# whose LibTorch the second build uses, and the reference packages of the parity checks;
# about 4 GB of downloads, kept in pip's cache). Idempotent and non-interactive: what is
# already present is left alone.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-}
case "$mode" in
  ""|reliability|python) ;;
  *) echo "setup.sh: unknown mode '$mode' (expected nothing, reliability or python)" >&2; exit 2 ;;
esac
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

packages=(
  build-essential cmake pkg-config
  ccache                 # rebuilds of unchanged sources (a second build directory, a clean clone) are cache hits
  libtorch-dev
  libopenblas0-pthread   # without it Torch falls back to reference BLAS (~25x slower matmul)
  libfmt-dev libyaml-cpp-dev catch2 nlohmann-json3-dev libpcre2-dev libcli11-dev
  libdnnl-dev            # oneDNN: the CPU INT8 GEMM (AVX-512 VNNI)
  libgloo-dev            # headers of the Gloo process group LibTorch links (multi-process search)
)
if [ "$mode" = "reliability" ]; then
  packages+=(clang-14 libclang-rt-14-dev llvm-14)  # llvm-14: llvm-symbolizer for sanitizer reports
fi
# `python3 -m venv` needs Debian's python3-venv (ensurepip); a Python from elsewhere
# (pyenv, the GPU image) brings its own.
if [ "$mode" = "python" ] && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  packages+=(python3-venv)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
else
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

[ "$mode" = "python" ] || exit 0
venv=$root/.venv
requirements=$root/tools/requirements.txt
# Present when every pinned name==version is what `pip freeze` lists (pip would take
# seconds to say the same, and to re-resolve the torch wheel's dependencies).
venv_complete() {
  [ -x "$venv/bin/python" ] || return 1
  local frozen
  frozen=$("$venv/bin/python" -m pip freeze 2>/dev/null | tr 'A-Z_' 'a-z-') || return 1
  local pin
  while read -r pin; do
    grep -qxF "$pin" <<<"$frozen" || return 1
  done < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$requirements" | tr 'A-Z_' 'a-z-')
}
if venv_complete; then
  echo "setup: $venv has every package of tools/requirements.txt"
  exit 0
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
echo "setup: installing tools/requirements.txt into $venv (the torch wheel and its nvidia-* packages: about 4 GB)"
"$venv/bin/python" -m pip install -r "$requirements"
venv_complete || { echo "setup: $venv still lacks a pinned version of tools/requirements.txt" >&2; exit 1; }
