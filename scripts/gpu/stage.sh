#!/usr/bin/env bash
# Stages on this machine what the GPU machine needs to build the project and has not got:
# the Debian packages we build against (fmt, yaml-cpp, Catch2, nlohmann-json, PCRE2,
# CLI11, oneDNN 2.x for the CPU side of the [cuda] comparisons), as .deb files in .device/
# (git-ignored). The GPU machine reaches no registry, so they travel with the device
# tool's `carry: [".device"]`; scripts/gpu/env.sh unpacks them there. About 25 MB
# (the carry limit is 64 MiB). Idempotent: packages already downloaded are kept.
#
#   scripts/gpu/stage.sh [extra-debian-package ...]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
debs=$root/.device/debs
mkdir -p "$debs"
packages=(libfmt-dev libfmt9 libyaml-cpp-dev libyaml-cpp0.7 catch2 nlohmann-json3-dev
          libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3 libcli11-dev
          libdnnl-dev libdnnl2 ocl-icd-libopencl1 "$@")
missing=()
for p in "${packages[@]}"; do
  compgen -G "$debs/${p}_*.deb" >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! (cd "$debs" && apt-get download "${missing[@]}" >/dev/null 2>&1); then
    apt-get update -q >/dev/null
    (cd "$debs" && apt-get download "${missing[@]}")
  fi
fi
echo "staged in $debs: $(ls "$debs" | wc -l) packages, $(du -sh "$debs" | cut -f1)"
echo "device tool: carry [\".device\"], command: bash scripts/gpu_check.sh \$OUT"
