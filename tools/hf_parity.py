#!/usr/bin/env python3
"""Parity of every model family against Hugging Face transformers itself.

For each family this builds a small random model with transformers (no weights need
downloading), saves it with save_pretrained, runs transformers' forward on one token
sequence -- in full, and behind a prefix passed as past_key_values -- and compares the
logits with those of `cushioncache logits` on the saved folder. Passes when the maximum
relative error (max |ours - theirs| / max |theirs|) is at most 1e-4 in float32.

  python3 tools/hf_parity.py [--cli build/examples/cli/cushioncache] [--families opt bloom ...]
                             [--write-fixtures tests/fixtures/hf_parity]

--write-fixtures also saves each model with transformers' logits as a fixture folder
(a few tens of KB each); the Catch test "every family matches transformers' logits on
its saved fixtures" checks them in every CI run from then on.

Needs PyTorch, transformers (4.4x or 5.x) and safetensors; runs on CPU.
"""
import argparse
import pathlib
import shutil
import subprocess
import sys
import tempfile

import torch
import transformers
from safetensors.torch import load_file, save_file

VOCAB = 64
LENGTH = 24  # tokens in the checked sequence
PREFIX = 4   # of which the first PREFIX run as a cached prefix
TOLERANCE = 1e-4


def family_configs():
    """Small configs with each family's distinguishing features switched on."""
    llama_like = dict(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return {
        "llama": lambda: transformers.LlamaConfig(**llama_like, tie_word_embeddings=False),
        "llama3-rope": lambda: transformers.LlamaConfig(
            **llama_like, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
        "mistral": lambda: transformers.MistralConfig(**llama_like, sliding_window=8),
        "qwen2": lambda: transformers.Qwen2Config(**llama_like),
        "opt": lambda: transformers.OPTConfig(vocab_size=VOCAB, hidden_size=16, ffn_dim=32, num_hidden_layers=2,
                                              num_attention_heads=2, max_position_embeddings=64,
                                              word_embed_proj_dim=16),
        # opt-350m's shape: norms after the residual adds, narrower embeddings projected in and out.
        "opt-350m": lambda: transformers.OPTConfig(vocab_size=VOCAB, hidden_size=16, ffn_dim=32, num_hidden_layers=2,
                                                   num_attention_heads=2, max_position_embeddings=64,
                                                   do_layer_norm_before=False, word_embed_proj_dim=8),
        # Three heads: ALiBi's slopes for a head count that is not a power of two.
        "bloom": lambda: transformers.BloomConfig(vocab_size=VOCAB, hidden_size=24, n_layer=2, n_head=3),
        "gpt2": lambda: transformers.GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=2, n_head=2, n_positions=64),
    }


def build(family, seed):
    torch.manual_seed(seed)
    config = family_configs()[family]()
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager").float().eval()
    with torch.no_grad():
        # Move norm gains and biases off their initial 1 and 0 so that every tensor matters.
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model


def transformers_logits(model, ids):
    with torch.no_grad():
        full = model(ids.unsqueeze(0)).logits[0]
        past = model(ids[:PREFIX].unsqueeze(0), use_cache=True).past_key_values
        cached = model(ids[PREFIX:].unsqueeze(0), past_key_values=past).logits[0]
    return full.float(), cached.float()


def our_logits(cli, folder, ids, out):
    subprocess.run([cli, "--log-level", "warn", "logits", "--model", str(folder), "--ids",
                    " ".join(str(int(i)) for i in ids), "--prefix-length", str(PREFIX), "--out", str(out)], check=True)
    tensors = load_file(str(out))
    return tensors["logits"], tensors["cached_logits"]


def relative_error(ours, theirs):
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = pathlib.Path(__file__).resolve().parent.parent
    parser.add_argument("--cli", default=str(root / "build/examples/cli/cushioncache"))
    parser.add_argument("--families", nargs="+", default=list(family_configs()))
    parser.add_argument("--write-fixtures", type=pathlib.Path, help="save each model and transformers' logits here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    print(f"{'family':<14}{'full':>12}{'cached':>12}  result (max relative error, tolerance {TOLERANCE:g})")
    failed = []
    with tempfile.TemporaryDirectory() as scratch:
        for family in args.families:
            model = build(family, args.seed)
            folder = pathlib.Path(scratch) / family
            model.save_pretrained(folder, safe_serialization=True)
            ids = torch.randint(0, VOCAB, (LENGTH,), generator=torch.Generator().manual_seed(args.seed + 1))
            full, cached = transformers_logits(model, ids)
            ours_full, ours_cached = our_logits(args.cli, folder, ids, pathlib.Path(scratch) / f"{family}.logits.safetensors")
            errors = relative_error(ours_full, full), relative_error(ours_cached, cached)
            ok = max(errors) <= TOLERANCE
            print(f"{family:<14}{errors[0]:>12.2e}{errors[1]:>12.2e}  {'ok' if ok else 'FAILED'}")
            if not ok:
                failed.append(family)
            if args.write_fixtures:
                target = args.write_fixtures / family
                target.mkdir(parents=True, exist_ok=True)
                for name in ("config.json", "model.safetensors"):
                    shutil.copy(folder / name, target / name)
                save_file({"input_ids": ids.contiguous(), "logits": full.contiguous(), "cached_logits": cached.contiguous()},
                          str(target / "expected.safetensors"),
                          metadata={"prefix_length": str(PREFIX), "transformers_version": transformers.__version__})
    if failed:
        print(f"parity FAILED for: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
