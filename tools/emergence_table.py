#!/usr/bin/env python3
"""The table of docs/outliers.md from the training.json files `cushioncache train`
writes: one row per run at its last probe (or every probe with --all). Standard library
only. Usage: emergence_table.py [--all] runs/NAME/training.json ..."""

import json
import statistics
import sys


def dim_note(probe, layer):
    """The hidden dim of the position-0 maximum when it is also the block input's largest value."""
    dim = probe["residual_first_channel"][layer]
    return f", dim {dim}" if dim >= 0 else ", not the block's top"


def row(name, config, parameters, probe):
    m, o = config["model"], config["optimizer"]
    attn = probe["attention_on_first"]
    # What uniform causal attention would give: the mean over query positions t of 1/(t+1).
    uniform = sum(1 / (t + 1) for t in range(config["probe"]["seq_len"])) / config["probe"]["seq_len"]
    later = attn[1:] or attn
    ratio = probe["residual_first_ratio"]
    fppl, qppl = probe["float_ppl"], probe["quant_ppl"]
    return (f"| {name} | {parameters / 1e6:.2f}M: d {m['hidden_size']}, {m['num_layers']} layers, {m['num_heads']} heads, "
            f"ffn {m['intermediate_size']} | {config['tokenizer'] if config['tokenizer'] == 'bytes' else 'BPE'} | "
            f"{o['lr']:g} / {o['weight_decay']:g} | {probe['step']} x {config['batch_size'] * config['grad_accum']} x "
            f"{config['seq_len']} = {probe['tokens'] / 1e6:.1f}M | "
            f"{min(later):.3f}-{max(later):.3f} (median {statistics.median(later):.3f}; uniform {uniform:.3f}) | "
            f"{max(ratio):.1f} (layer {ratio.index(max(ratio))}{dim_note(probe, ratio.index(max(ratio)))}) | "
            f"{max(probe['down_proj_top_ratio']):.0f} | "
            + (f"{fppl:.3f} / {qppl:.3f} ({qppl / fppl:.2f}x)" if fppl > 0 else "—") + " |")


def main():
    args = sys.argv[1:]
    every = "--all" in args
    paths = [a for a in args if a != "--all"]
    if not paths:
        sys.exit(__doc__)
    print("| run | model | tokenizer | lr / wd | steps x batch x seq = tokens | attention on position 0, layers 1+ | "
          "position-0 max / median | down_proj max / median | ppl float / W8A8 static |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        with open(path, encoding="utf-8") as f:
            t = json.load(f)
        probes = t["probes"] if every else t["probes"][-1:]
        for p in probes:
            print(row(t["config"]["name"], t["config"], t["parameters"], p))


if __name__ == "__main__":
    main()
