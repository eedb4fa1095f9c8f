#!/usr/bin/env bash
# Quick start, part 1: installs what is missing, builds, and runs the main job on the
# default model, the llama2.c stories260K model from $CC_DATA_DIR (default
# ../shared/data): greedy generation (llama2.c's own expected output), then a short
# evaluation (WikiText-2 perplexity and 200 HellaSwag items) written to build/demo-eval.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
data=${CC_DATA_DIR:-$root/../shared/data}
model=$data/models/stories260K
cli=$root/build/examples/cli/cushioncache
"$cli" generate --model "$model/stories260K.bin" --tokenizer "$model/tok512.bin" --temperature 0 --steps 200
"$cli" eval --model "$model/stories260K.bin" --tokenizer "$model/tok512.bin" \
  --ppl wikitext2 --max-windows 16 --tasks hellaswag --limit 200 --out "$root/build/demo-eval.json"
