#!/usr/bin/env python3
"""Parity of every model family against Hugging Face transformers itself.

For each family this builds a small random model with transformers (no weights need
downloading), saves it with save_pretrained, runs transformers' forward on one token
sequence -- in full, and behind a prefix passed as past_key_values -- and on a batch of
two sequences of different lengths, left- and right-padded with an attention mask (in
full and behind the rows' prefixes), and compares the logits with those of
`cushioncache logits` on the saved folder (at the real tokens of padded rows). Passes
when the maximum relative error (max |ours - theirs| / max |theirs|) is at most 1e-4 in
float32.

  python3 tools/hf_parity.py [--cli build/examples/cli/cushioncache] [--families opt bloom ...]
                             [--write-fixtures tests/fixtures/hf_parity]

Exit status: 0 all families agree, 1 a family differs, 77 (skip) when PyTorch,
transformers or safetensors cannot be imported (scripts/setup.sh python installs them).

--write-fixtures also saves each model with transformers' logits as a fixture folder
(a few tens of KB each); the Catch test "every family matches transformers' logits on
its saved fixtures" checks them in every CI run from then on.

Needs PyTorch, transformers (4.4x or 5.x) and safetensors; runs on CPU (about 10 s per family).
"""
import argparse
import inspect
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

try:
    import torch
    import transformers
    from safetensors.torch import load_file, save_file
except ImportError as missing:  # the skip ctest reports (tests/cli/python_parity.cmake)
    print(f"SKIPPED: {missing}: run scripts/setup.sh python (PyTorch, transformers, safetensors)")
    sys.exit(77)

VOCAB = 64
LENGTH = 24  # tokens in the checked sequence
PREFIX = 4   # of which the first PREFIX run as a cached prefix
SHORT = 15   # the shorter row of the padded batch (LENGTH the longer one)
PAD_ID = 0   # what the padding slots hold (masked, so any id would do)
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


def run_prefix(model, ids):
    """The KV cache of `ids` ([B, P], no padding) as the model returns it: a Cache object
    in transformers 5 (named `cache` from 5.2x on, `past_key_values` before), tuples in 4.x."""
    out = model(ids, use_cache=True)
    return out["cache"] if "cache" in out else out["past_key_values"]


def with_past(model, past):
    """The keyword that hands a cache back in: `cache` where the forward names it so,
    else `past_key_values` (transformers 5.2x deprecates that name)."""
    return {"cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values": past}


def transformers_logits(model, ids):
    with torch.no_grad():
        full = model(ids.unsqueeze(0)).logits[0]
        past = run_prefix(model, ids[:PREFIX].unsqueeze(0))
        cached = model(ids[PREFIX:].unsqueeze(0), **with_past(model, past)).logits[0]
    return full.float(), cached.float()


def pad(rows, left):
    """Rows padded to one batch as a Hugging Face tokenizer pads them: ids and attention mask."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[b, span] = row
        mask[b, span] = 1
    return ids, mask


def padded_forward(model, ids, mask, past=None, past_length=0):
    """A padded batch the way generate() runs one: position ids counted over the real
    tokens for the models whose forward takes them (OPT and BLOOM derive theirs, or their
    ALiBi distances, from the mask themselves), the mask covering past and input."""
    full_mask = torch.cat([torch.ones((ids.shape[0], past_length), dtype=torch.long), mask], 1)
    kwargs = dict(attention_mask=full_mask)
    if "position_ids" in inspect.signature(model.forward).parameters:
        positions = full_mask.cumsum(-1) - 1
        kwargs["position_ids"] = positions[:, past_length:].masked_fill(mask == 0, 1)
    if past is not None:
        kwargs.update(with_past(model, past))
    return model(ids, **kwargs).logits.float()


def transformers_padded_logits(model, rows, left):
    """Full logits of the padded batch, and those of the rows' remainders (padded again)
    behind the batch of their first PREFIX tokens as past_key_values."""
    ids, mask = pad(rows, left)
    rest_ids, rest_mask = pad([row[PREFIX:] for row in rows], left)
    with torch.no_grad():
        full = padded_forward(model, ids, mask)
        past = run_prefix(model, torch.stack([row[:PREFIX] for row in rows]))
        cached = padded_forward(model, rest_ids, rest_mask, past=past, past_length=PREFIX)
    return (ids, mask, full), (rest_ids, rest_mask, cached)


def our_logits(cli, folder, ids, out):
    subprocess.run([cli, "--log-level", "warn", "logits", "--model", str(folder), "--ids",
                    " ".join(str(int(i)) for i in ids), "--prefix-length", str(PREFIX), "--out", str(out)], check=True)
    tensors = load_file(str(out))
    return tensors["logits"], tensors["cached_logits"]


def our_padded_logits(cli, folder, rows, left, out):
    command = [cli, "--log-level", "warn", "logits", "--model", str(folder), "--padding", "left" if left else "right",
               "--prefix-length", str(PREFIX), "--out", str(out)]
    for row in rows:
        command += ["--ids", " ".join(str(int(i)) for i in row)]
    subprocess.run(command, check=True)
    tensors = load_file(str(out))
    return ((tensors["input_ids"], tensors["attention_mask"], tensors["logits"]),
            (tensors["cached_input_ids"], tensors["cached_attention_mask"], tensors["cached_logits"]))


def masked_relative_error(ours, theirs):
    """Relative error over the real tokens; the two sides must agree on the layout first."""
    our_ids, our_mask, our_logits_ = ours
    their_ids, their_mask, their_logits = theirs
    if not (torch.equal(our_ids.long(), their_ids) and torch.equal(our_mask.long(), their_mask)):
        raise SystemExit("the padded batch layouts differ (ids or attention_mask): the comparison would be meaningless")
    real = their_mask.bool()
    return relative_error(our_logits_[real], their_logits[real])


def relative_error(ours, theirs):
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = pathlib.Path(__file__).resolve().parent.parent
    parser.add_argument("--cli", default=str(root / "build/examples/cli/cushioncache"))
    parser.add_argument("--families", nargs="+", default=list(family_configs()))
    parser.add_argument("--write-fixtures", type=pathlib.Path, help="save each model and transformers' logits here")
    parser.add_argument("--seed", type=int, default=0)
    # One thread on both sides: these models are tiny, and spinning OpenMP threads only
    # cost CPU time on a busy machine (ctest -j2).
    parser.add_argument("--threads", type=int, default=1, help="threads for transformers and for our CLI (OMP_NUM_THREADS)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    columns = ("full", "cached", "right-pad", "right+cache", "left-pad", "left+cache")
    print(f"{'family':<14}" + "".join(f"{c:>13}" for c in columns) + f"  result (max relative error, tolerance {TOLERANCE:g})")
    failed = []
    with tempfile.TemporaryDirectory() as scratch:
        for family in args.families:
            model = build(family, args.seed)
            folder = pathlib.Path(scratch) / family
            model.save_pretrained(folder, safe_serialization=True)
            generator = torch.Generator().manual_seed(args.seed + 1)
            ids = torch.randint(0, VOCAB, (LENGTH,), generator=generator)
            full, cached = transformers_logits(model, ids)
            ours_full, ours_cached = our_logits(args.cli, folder, ids, pathlib.Path(scratch) / f"{family}.logits.safetensors")
            errors = [relative_error(ours_full, full), relative_error(ours_cached, cached)]
            rows = [ids, torch.randint(0, VOCAB, (SHORT,), generator=generator)]
            for left in (False, True):
                theirs = transformers_padded_logits(model, rows, left)
                ours = our_padded_logits(args.cli, folder, rows, left,
                                         pathlib.Path(scratch) / f"{family}.{'left' if left else 'right'}.safetensors")
                errors += [masked_relative_error(ours[0], theirs[0]), masked_relative_error(ours[1], theirs[1])]
            ok = max(errors) <= TOLERANCE
            print(f"{family:<14}" + "".join(f"{e:>13.2e}" for e in errors) + f"  {'ok' if ok else 'FAILED'}", flush=True)
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
