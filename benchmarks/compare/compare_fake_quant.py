#!/usr/bin/env python3
"""Comparison 4, fake quantization: our `eval --quant w8a8-per-tensor-dynamic` against the
same fake quantization written with PyTorch ops on transformers' model (hf_perplexity.py:
weights quantized in place, forward pre-hooks on the block linears' inputs).

The preset needs no calibration, so both sides define the same numbers: weights
w8-per-channel-sym (one range per output row, [-128, 127], zero-point 0), activations
a8-per-tensor-dynamic-asym at the inputs of q/k/v, o_proj, gate/up and down_proj (one
[min, max] per sequence widened to include 0, [0, 255], zero-point round(-min/scale)),
the LM head in float; round half to even; x_hat = (clamp(round(x/s) + z) - z) * s in
float32 (docs/quantization.md, cushioncache/quant/fake_quant.cpp).

Rounding activations to a per-tensor grid is discontinuous: two float32 implementations
that differ by 1e-6 (ours and transformers' logits differ by ~3e-6) land some values on
the other side of a rounding edge, and the change grows layer after layer. So the
activation rows are judged against transformers' own spread under 1e-6 noise on its
embeddings (perplexity_pairs.agreement); the weights-only rows, where no activation is
rounded, must agree to 1e-4 and check the weight quantizer exactly.

  compare_fake_quant.py --cli BUILD --threads N --reps R --out DIR [--quick]
"""
import sys

import perplexity_pairs as pairs
from perplexity_pairs import Case

SEQ_LEN = 512
PRESET = "w8a8-per-tensor-dynamic"
WEIGHTS_ONLY = "w8-per-channel-sym"


def weights_only_recipe(args):
    """Our recipe with the preset's weights and no activation quantizer."""
    path = args.out / "w8-per-channel-sym-only.yaml"
    path.write_text(f"name: {WEIGHTS_ONLY}-only\nweights: {WEIGHTS_ONLY}\nactivations: off\n")
    return path


def smollm2_case(args, windows, recipe, **extra):
    ids, same, note = pairs.smollm2_ids(args, windows * SEQ_LEN)
    ours = ["--model", pairs.model_path(), "--ppl", "wikitext2", "--seq-len", SEQ_LEN, "--max-windows", windows,
            "--quant", recipe]
    quant, label = (PRESET, PRESET) if recipe == PRESET else (WEIGHTS_ONLY, f"weights only ({WEIGHTS_ONLY})")
    return Case("4 fake quant", f"SmolLM2-135M, {label}", ours, pairs.converted(args, pairs.model_path(), "smollm2"),
                ids, SEQ_LEN, windows, quant=quant, ids_agree=same, notes=[note], **extra)


def stories_case(args, windows, recipe, **extra):
    model, tokenizer = pairs.stories_files()
    ids, note = pairs.tok512_ids(args, windows * SEQ_LEN)
    ours = ["--model", model, "--tokenizer", tokenizer, "--ppl", "wikitext2", "--seq-len", SEQ_LEN,
            "--max-windows", windows, "--quant", recipe]
    quant, label = (PRESET, PRESET) if recipe == PRESET else (WEIGHTS_ONLY, f"weights only ({WEIGHTS_ONLY})")
    return Case("4 fake quant", f"stories260K, {label}", ours, pairs.converted(args, model, "stories260K"), ids,
                SEQ_LEN, windows, quant=quant, notes=[note], **extra)


def build_cases(args):
    recipe = weights_only_recipe(args)
    if args.quick:
        return [smollm2_case(args, 1, PRESET, chaotic=True), stories_case(args, 4, PRESET, chaotic=True),
                stories_case(args, 4, recipe)]
    return [smollm2_case(args, 4, PRESET, chaotic=True), stories_case(args, 16, PRESET, chaotic=True),
            smollm2_case(args, 1, recipe, reps=1), stories_case(args, 16, recipe)]


if __name__ == "__main__":
    sys.exit(pairs.main("compare_fake_quant", __doc__, build_cases))
