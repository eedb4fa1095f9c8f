#!/usr/bin/env python3
"""Parity of the real model, SmolLM2-135M-Instruct from its llama.cpp GGUF file, with transformers.

transformers loads the same .gguf (dequantized through the gguf package) as a float32
LlamaForCausalLM with eager attention on the CPU; we run `cushioncache logits` and
`cushioncache generate` on the file. Token ids come from transformers' tokenizer (built
from the file's metadata), so the check does not depend on our tokenizer. Checks, on
English prose, code, a chat-formatted prompt and a WikiText-2 passage longer than 512
tokens:
  logits   max |ours - theirs| / max |theirs| <= 1e-4 over every position, the three
           short prompts run by us as one right-padded batch (attention mask);
  cached   the same for the text behind the prompt's first PREFIX tokens run as a cached
           prefix, against transformers with past_key_values from that prefix;
  greedy   64 greedily generated tokens identical (`cushioncache generate --ids
           --temperature 0` against transformers' generate(do_sample=False)), both
           stopping at the same ids (EOS or BOS, as model/generate.h stops).

  python3 tools/smollm2_parity.py [--cli build/examples/cli/cushioncache] [--model FILE.gguf]

The model: $CC_MODEL_DIR (default ~/.cache/cushioncache/models)/SmolLM2-135M-Instruct.Q4_1.gguf,
fetched by scripts/fetch_models.sh. The data: $CC_DATA_DIR (default ../shared/data beside
the checkout)/text/wikitext-2-raw/wiki.test.raw. Exit status: 0 every check passes, 1 one
fails, 77 (skip) when the model, the data or the Python packages are missing.
"""
import argparse
import inspect
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import project_paths

TOLERANCE = 1e-4
PREFIX = 8          # tokens of each prompt run as the cached prefix
NEW_TOKENS = 64     # greedy continuation length
WIKI_MIN_TOKENS = 512


def skip(why):
    print(f"SKIPPED: {why}")
    sys.exit(77)


try:
    import torch
    import transformers
    from safetensors.torch import load_file
    import gguf  # noqa: F401  (transformers dequantizes the file through it)
except ImportError as missing:
    skip(f"{missing}: run scripts/setup.sh python (PyTorch, transformers, gguf, safetensors)")

PROSE = ("The old lighthouse keeper climbed the spiral stairs every evening, counting the steps out of habit. "
         "From the top he could see the fishing boats returning to the harbour, their lights scattered across the water")
CODE = '''def fibonacci(n):
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


if __name__ == "__main__":
    for i in range(10):
        print(i, fibonacci('''
CHAT = [{"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What are three good reasons to learn a second language?"}]


def wiki_passage(path, tokenizer):
    """The first whole lines of WikiText-2's test split whose tokens exceed WIKI_MIN_TOKENS."""
    text = ""
    with open(path, encoding="utf-8") as f:
        for line in f:
            text += line
            if len(tokenizer(text, add_special_tokens=False).input_ids) > WIKI_MIN_TOKENS:
                return text
    raise SystemExit(f"{path} has fewer than {WIKI_MIN_TOKENS} tokens")


def relative_error(ours, theirs):
    return ((ours.float() - theirs.float()).abs().max() / theirs.float().abs().max()).item()


def run(command, what):
    began = time.time()
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed (exit {done.returncode}):\n{' '.join(command)}\n{done.stderr[-4000:]}")
    return done.stdout, time.time() - began


def ids_arg(ids):
    return " ".join(str(int(i)) for i in ids)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data_dir = project_paths.data_dir()
    parser.add_argument("--cli", default=str(project_paths.ROOT / "build/examples/cli/cushioncache"))
    parser.add_argument("--model", type=pathlib.Path, default=project_paths.smollm2_gguf())
    parser.add_argument("--no-generate", action="store_true", help="leave out the greedy generation check")
    # One thread on both sides: with two, OpenMP's spinning threads cost 5-7x the CPU time
    # (per decoding step above all) on a busy 2-core machine (ctest -j2), for no speed-up.
    parser.add_argument("--threads", type=int, default=1, help="threads for transformers and for our CLI (OMP_NUM_THREADS)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if not args.model.exists():
        skip(f"{args.model} not found: run scripts/fetch_models.sh (or set CC_MODEL_DIR)")
    wiki_path = data_dir / "text/wikitext-2-raw/wiki.test.raw"
    if not wiki_path.exists():
        skip(f"{wiki_path} not found (set CC_DATA_DIR)")
    if not os.access(args.cli, os.X_OK):
        raise SystemExit(f"{args.cli} is not an executable: build the cushioncache_cli target")

    began = time.time()
    folder, name = str(args.model.parent), args.model.name
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32,
                                                              attn_implementation="eager").eval()
    loaded = time.time() - began
    wiki = wiki_passage(wiki_path, tokenizer)
    chat = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    prompts = {"prose": PROSE, "code": CODE, "chat": chat, "wikitext-2": wiki}
    ids = {k: torch.tensor(tokenizer(v, add_special_tokens=False).input_ids) for k, v in prompts.items()}
    # Our generate stops at EOS or BOS (model/generate.h); transformers' is told the same ids.
    stop_ids = sorted({tokenizer.eos_token_id, tokenizer.bos_token_id} - {None})

    print(f"transformers {transformers.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.model} loaded in {loaded:.0f} s")
    theirs = {}
    with torch.no_grad():
        for key, x in ids.items():
            full = model(x.unsqueeze(0)).logits[0]
            out = model(x[:PREFIX].unsqueeze(0), use_cache=True)
            past = out["cache"] if "cache" in out else out["past_key_values"]
            # transformers 5.2x names the cache argument `cache` (`past_key_values` before).
            past_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
            cached = model(x[PREFIX:].unsqueeze(0), **{past_kw: past}).logits[0]
            theirs[key] = (full.float(), cached.float())
    theirs_s = time.time() - began - loaded

    failed = []
    results = {k: {"tokens": len(v)} for k, v in ids.items()}
    with tempfile.TemporaryDirectory() as scratch:
        # The three short prompts as one right-padded batch, the long one alone: two loads.
        short = ["prose", "code", "chat"]
        batch_out = pathlib.Path(scratch) / "short.safetensors"
        command = [args.cli, "--log-level", "warn", "logits", "--model", str(args.model), "--padding", "right",
                   "--prefix-length", str(PREFIX), "--out", str(batch_out)]
        for key in short:
            command += ["--ids", ids_arg(ids[key])]
        _, ours_s = run(command, "cushioncache logits (padded batch)")
        tensors = load_file(str(batch_out))
        for row, key in enumerate(short):
            mask, rest_mask = tensors["attention_mask"][row].bool(), tensors["cached_attention_mask"][row].bool()
            results[key]["logits"] = relative_error(tensors["logits"][row][mask], theirs[key][0])
            results[key]["cached"] = relative_error(tensors["cached_logits"][row][rest_mask], theirs[key][1])
        del tensors
        long_out = pathlib.Path(scratch) / "wikitext.safetensors"
        _, seconds = run([args.cli, "--log-level", "warn", "logits", "--model", str(args.model), "--ids",
                          ids_arg(ids["wikitext-2"]), "--prefix-length", str(PREFIX), "--out", str(long_out)],
                         "cushioncache logits (WikiText-2 passage)")
        ours_s += seconds
        tensors = load_file(str(long_out))
        results["wikitext-2"]["logits"] = relative_error(tensors["logits"], theirs["wikitext-2"][0])
        results["wikitext-2"]["cached"] = relative_error(tensors["cached_logits"], theirs["wikitext-2"][1])
        del tensors

    generate_s = 0.0
    if not args.no_generate:
        for key, x in ids.items():
            began = time.time()
            with torch.no_grad():
                out = model.generate(x.unsqueeze(0), attention_mask=torch.ones_like(x).unsqueeze(0), do_sample=False,
                                     max_new_tokens=NEW_TOKENS, eos_token_id=stop_ids, pad_token_id=stop_ids[-1],
                                     output_scores=True, return_dict_in_generate=True)
            their_tokens = out.sequences[0, len(x):].tolist()
            # How close the greedy choice came to a tie along transformers' path, relative to
            # the largest logit: a margin near the tolerance would make a mismatch a tie.
            margin = min((lambda top: ((top[0] - top[1]) / top[0].abs()).item())(s[0].float().topk(2).values)
                         for s in out.scores)
            generate_s += time.time() - began
            stdout, seconds = run([args.cli, "--log-level", "warn", "generate", "--model", str(args.model), "--ids",
                                   ids_arg(x), "--temperature", "0", "--steps", str(len(x) + NEW_TOKENS - 1),
                                   "--print-ids"], f"cushioncache generate ({key})")
            ours_s += seconds
            our_tokens = [int(t) for t in stdout.split()]
            same = next((i for i, (a, b) in enumerate(zip(our_tokens, their_tokens)) if a != b),
                        min(len(our_tokens), len(their_tokens)))
            results[key]["greedy"] = (same, len(their_tokens), our_tokens == their_tokens, margin)

    print(f"{'prompt':<12}{'tokens':>7}{'logits':>11}{'cached':>11}   greedy (equal tokens / generated, least top-2 margin)")
    for key, r in results.items():
        ok = r["logits"] <= TOLERANCE and r["cached"] <= TOLERANCE
        greedy = ""
        if "greedy" in r:
            same, n, equal, margin = r["greedy"]
            ok = ok and equal
            greedy = f"{same}/{n} {'identical' if equal else 'DIFFER'} ({margin:.1e})"
        print(f"{key:<12}{r['tokens']:>7}{r['logits']:>11.2e}{r['cached']:>11.2e}   {greedy:<30}{'ok' if ok else 'FAILED'}")
        if not ok:
            failed.append(key)
    print(f"max relative error tolerance {TOLERANCE:g}; cached = behind the first {PREFIX} tokens as a prefix; "
          f"time: transformers {theirs_s + generate_s:.0f} s (+{loaded:.0f} s load), cushioncache {ours_s:.0f} s")
    if failed:
        print(f"SmolLM2 parity FAILED for: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
