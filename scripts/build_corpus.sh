#!/usr/bin/env bash
# Rebuilds the pretraining corpus of `cushioncache train` in corpus/ (never committed):
# the shared C4 documents plus free English text from Debian packages, deduplicated, with
# its sha256 in corpus/MANIFEST.json. Installs the packages it reads when missing.
# Usage: scripts/build_corpus.sh [OUT_DIR]   (CC_DATA_DIR as everywhere else)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-corpus}"
data="${CC_DATA_DIR:-../shared/data}"
packages=(python3 bible-kjv bible-kjv-text fortunes python3.11-doc)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "installing ${missing[*]}" >&2
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python="$(command -v /usr/bin/python3 || command -v python3)"
"$python" tools/build_corpus.py "$data" "$out"
