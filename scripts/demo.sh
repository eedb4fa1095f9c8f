#!/usr/bin/env bash
# Quick start, part 1: installs what is missing, builds, and runs the main job on the
# default model, the llama2.c stories260K model from $CC_DATA_DIR (default
# ../shared/data): a greedy generation that must print llama2.c's own output, then the
# whole CushionCache pipeline (configs/stories260K.yaml: float and W8A8 baselines, the
# BOS and PrefixQuant prefixes, the prefix search, quantization-aware tuning, evaluation
# and inspection; about 2 minutes on 2 cores), written to build/demo-run/report.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
data=${CC_DATA_DIR:-$root/../shared/data}
model=$data/models/stories260K
cli=$root/build/examples/cli/cushioncache
"$cli" generate --model "$model/stories260K.bin" --tokenizer "$model/tok512.bin" --temperature 0 --steps 200
# Starts over each time; after a Ctrl-C, add --resume to continue the search and tuning.
"$cli" run --config "$root/configs/stories260K.yaml" --out "$root/build/demo-run"
