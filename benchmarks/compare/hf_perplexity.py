#!/usr/bin/env python3
"""The transformers side of the perplexity comparisons: one child process per run.

Loads a Hugging Face folder as transformers' eager LlamaForCausalLM in float32 on the CPU,
optionally fake-quantizes it as our w8a8-per-tensor-dynamic preset does (written here
with plain PyTorch ops and forward pre-hooks) or only its weights (w8-per-channel-sym),
and computes perplexity over given token
ids exactly as cushioncache/eval/perplexity.cpp does: non-overlapping windows of
--seq-len tokens, every token but each window's first scored, log-probabilities summed
in float64, PPL = exp(mean NLL). Prints one JSON object on stdout.

  hf_perplexity.py --model-dir DIR --ids IDS.npy --seq-len 512 --windows 4 --threads 2
                   [--quant none|w8a8-per-tensor-dynamic|w8-per-channel-sym] [--spread K]

--spread K then evaluates K more times, the embedding table multiplied each time by
1 + 1e-6 N(0, 1) (seeds 1..K): how far float noise of the size by which two correct
float32 implementations differ (our logits and transformers' differ by ~3e-6) moves the
perplexity. Rounding activations to a coarse grid carries such noise a long way.

Run as a child so that the parent can read this process's own peak resident memory,
as it does for our CLI. Only the window loop is timed; loading and
quantizing the weights are not, as our eval's JSON "seconds" leaves them out too.
"""
import argparse
import json
import time

import numpy as np
import torch
import transformers

# The presets' definitions (docs/quantization.md, cushioncache/quant/fake_quant.cpp).
MIN_SCALE = 1e-10                 # keeps 1/scale finite when a range collapses to a point
ACT_QMIN, ACT_QMAX = 0, 255       # 8-bit asymmetric activations
WEIGHT_QMIN, WEIGHT_QMAX = -128, 127  # 8-bit symmetric weights
# Our activation sites are the inputs of every linear layer inside the blocks; the LM head
# stays in float. q/k/v read one input (attn_input), gate/up another (mlp_input).
BLOCK_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def fake_quantize(x, scale, zero_point, qmin, qmax):
    """Quantize-dequantize in the order our FakeQuantizeSte computes it.

    A true division (not a multiply by 1/scale) and torch.round, which rounds half to
    even as at::round does; any other order can flip values that sit on a rounding edge.
    """
    q = torch.round(x / scale) + zero_point
    return (q.clamp(qmin, qmax) - zero_point) * scale


def quantize_weight_per_channel_sym(weight):
    """w8-per-channel-sym: one range per output row, widened to include 0, zero-point 0."""
    lo = weight.amin(1, keepdim=True).clamp_max(0.0)
    hi = weight.amax(1, keepdim=True).clamp_min(0.0)
    scale = torch.maximum(lo.abs(), hi).div(WEIGHT_QMAX).clamp_min(MIN_SCALE)
    return fake_quantize(weight, scale, torch.zeros_like(scale), WEIGHT_QMIN, WEIGHT_QMAX)


def quantize_activation_per_tensor_asym(x):
    """a8-per-tensor-dynamic-asym: one [min, max] per sequence (not per batch), as ours."""
    lo = x.amin(dim=(1, 2), keepdim=True).clamp_max(0.0)
    hi = x.amax(dim=(1, 2), keepdim=True).clamp_min(0.0)
    scale = (hi - lo).div(ACT_QMAX - ACT_QMIN).clamp_min(MIN_SCALE)
    zero_point = torch.round(-lo / scale).clamp(ACT_QMIN, ACT_QMAX)
    return fake_quantize(x, scale, zero_point, ACT_QMIN, ACT_QMAX)


class SharedInputQuantizer:
    """Pre-hook body for linears that read the same tensor (q/k/v; gate/up).

    Ours quantizes each site once; remembering the last input keeps the three q/k/v
    hooks from quantizing it three times (which would give the same values, slower).
    """

    def __init__(self):
        self.last_input = None
        self.last_output = None

    def __call__(self, module, args):
        x = args[0]
        if x is not self.last_input:
            self.last_input, self.last_output = x, quantize_activation_per_tensor_asym(x)
        return (self.last_output,) + tuple(args[1:])


def block_linears(layer):
    return [getattr(layer.self_attn, n) for n in BLOCK_LINEARS[:4]] + [getattr(layer.mlp, n) for n in BLOCK_LINEARS[4:]]


def quantize_block_weights(model):
    """w8-per-channel-sym on every linear inside the blocks (not the LM head), in place."""
    with torch.no_grad():
        for layer in model.model.layers:
            for linear in block_linears(layer):
                linear.weight.copy_(quantize_weight_per_channel_sym(linear.weight))


def apply_w8a8_per_tensor_dynamic(model):
    """Quantizes the block linears' weights in place and hooks their inputs."""
    quantize_block_weights(model)
    handles = []
    for layer in model.model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        attn_input, mlp_input = SharedInputQuantizer(), SharedInputQuantizer()
        sites = {attn.q_proj: attn_input, attn.k_proj: attn_input, attn.v_proj: attn_input,
                 attn.o_proj: SharedInputQuantizer(), mlp.gate_proj: mlp_input, mlp.up_proj: mlp_input,
                 mlp.down_proj: SharedInputQuantizer()}
        handles += [linear.register_forward_pre_hook(hook) for linear, hook in sites.items()]
    return handles


def perplexity_spread(model, ids, seq_len, windows, count):
    """Perplexities with the embedding table multiplied by 1 + 1e-6 N(0, 1), seeds 1..count.

    The table is tied to the LM head in SmolLM2 and stories260K, so the head moves by the
    same 1e-6; the original is put back afterwards.
    """
    weight = model.get_input_embeddings().weight
    original = weight.detach().clone()
    spread = []
    for seed in range(1, count + 1):
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            weight.copy_(original * (1 + 1e-6 * torch.randn(original.shape, generator=generator)))
        spread.append(perplexity(model, ids, seq_len, windows)[0])
    with torch.no_grad():
        weight.copy_(original)
    return spread


def perplexity(model, ids, seq_len, windows):
    """GPTQ-style perplexity with our window arithmetic; returns (ppl, mean_nll, seconds)."""
    all_windows = torch.from_numpy(ids[: windows * seq_len]).view(windows, seq_len)
    total_nll, scored = 0.0, 0
    began = time.perf_counter()
    with torch.inference_mode():
        for window in all_windows:
            logits = model(window.unsqueeze(0), use_cache=False).logits[0, :-1].float()
            logprobs = torch.log_softmax(logits, -1).gather(1, window[1:].unsqueeze(1))
            total_nll -= logprobs.double().sum().item()
            scored += seq_len - 1
    seconds = time.perf_counter() - began
    mean_nll = total_nll / scored
    return float(np.exp(mean_nll)), mean_nll, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--ids", required=True, help=".npy of int64 token ids (at least windows * seq_len)")
    parser.add_argument("--seq-len", type=int, required=True)
    parser.add_argument("--windows", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--quant", default="none", choices=["none", "w8a8-per-tensor-dynamic", "w8-per-channel-sym"])
    parser.add_argument("--spread", type=int, default=0, help="perturbed evaluations after the timed one")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ids = np.load(args.ids).astype(np.int64)
    if len(ids) < args.windows * args.seq_len:
        raise SystemExit(f"{args.ids} holds {len(ids)} ids, fewer than {args.windows} windows of {args.seq_len}")
    model = transformers.AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32,
                                                              attn_implementation="eager").eval()
    if args.quant == "w8a8-per-tensor-dynamic":
        apply_w8a8_per_tensor_dynamic(model)
    elif args.quant == "w8-per-channel-sym":
        quantize_block_weights(model)
    ppl, mean_nll, seconds = perplexity(model, ids, args.seq_len, args.windows)
    spread = perplexity_spread(model, ids, args.seq_len, args.windows, args.spread) if args.spread else []
    print(json.dumps({"ppl": ppl, "mean_nll": mean_nll, "seconds": seconds, "spread": spread, "windows": args.windows,
                      "seq_len": args.seq_len, "threads": torch.get_num_threads(),
                      "transformers": transformers.__version__, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
