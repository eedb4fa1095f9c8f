#!/usr/bin/env bash
# Quick start, part 1: installs what is missing, builds, and runs the main job on the
# default model: greedy generation with the llama2.c stories260K model from
# $CC_DATA_DIR (default ../shared/data).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
data=${CC_DATA_DIR:-$root/../shared/data}
model=$data/models/stories260K
"$root/build/examples/cli/cushioncache" generate \
  --model "$model/stories260K.bin" --tokenizer "$model/tok512.bin" \
  --temperature 0 --steps 200 "$@"
