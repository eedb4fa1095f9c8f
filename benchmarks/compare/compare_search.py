#!/usr/bin/env python3
"""`cushioncache search` against the prefix search a user would write on transformers.

The baseline is the paper's Algorithm 1 written plainly: for each step, the current
prefix's KV cache is computed once; then every candidate token, one at a time, runs as
candidate + text behind a copy of that cache (copy.deepcopy of the DynamicCache, since a
forward appends to it), with output_hidden_states=True and logits_to_keep=1 (no logits
are needed). Its score is our objective: for every block's input (hidden_states[0..L-1],
the residual stream entering each decoder layer, our default site), on the text positions
only (the candidate is a prefix position, never quantized), the squared error of 8-bit
asymmetric min-max fake quantization over that tensor, summed in float32 per block and
in float64 over blocks. L(prefix) is the same on the text behind the prefix alone. The
lowest score wins (ties: the lowest token) and is appended if L(prefix + t) < tau *
L(prefix). No batching, no pruning: the plain loop.

Ours: `cushioncache search` from BUILD_DIR as it runs by default (batches of 16, exact
pruning), with the same settings: seed prefix BOS, --max-length 2 (one step: a full
search of these models stops after step 1 anyway, see below), tau 0.5, and the same text
and candidates, given as --data FILE.jsonl (one document of exactly --text-tokens tokens
under our tokenizer, so the search's window is the whole document; the baseline gets the
same ids from `cushioncache tokenize`) and --candidates. Both are timed over the step
itself (prefix KV, L(prefix), every candidate; ours from the state file's step seconds,
which leave out loading), with the same thread count.

Cases: stories260K (the llama2.c checkpoint, converted by `cushioncache convert` for
transformers) over its whole vocabulary, 509 tokens (BOS, EOS and UNK excluded, as ours
excludes control tokens), on 510 text tokens (the search's default for its 512-token
context); SmolLM2-135M-Instruct (the Q4_1 GGUF, which transformers dequantizes as in
tools/smollm2_parity.py) over the 64 most frequent tokens of the first C4 validation
documents, on 128 text tokens. --quick: 256 and 64 text tokens, 16 SmolLM2 candidates.

Agreement (exit 1 otherwise), relative 1e-4: L(prefix); the accept/stop decision; on
acceptance the same token; every score ours completed (the state file's best 16) equals
the baseline's for that token; and no candidate ours left out scores below min(ours'
best, tau * L(prefix)) in the baseline, i.e. pruning lost nothing. Ours' best token on a
rejected step is the best of what it completed, not necessarily the overall minimum
(pruning stops every candidate above tau * L(prefix)); whether it is is reported.

Prints markdown rows | comparison | case | command | ours | theirs | ratio | agreement |
and writes OUT/search.json.
"""
import argparse
import collections
import copy
import inspect
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

import torch
import transformers

import perplexity_pairs as pairs  # the shared data and model folders, as the other comparisons find them

TOLERANCE = 1e-4
TAU = 0.5


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cli", required=True, help="our build folder (holds examples/cli/cushioncache)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=3, help="alternating repetitions of each pair")
    p.add_argument("--out", required=True, type=pathlib.Path)
    p.add_argument("--quick", action="store_true", help="shorter texts, fewer SmolLM2 candidates")
    return p.parse_args()


def run(command, threads):
    """Runs one of our commands; its stdout, and the wall seconds it took."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    began = time.perf_counter()
    done = subprocess.run([str(c) for c in command], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, command))} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout, time.perf_counter() - began


def tokenize(cli, tokenizer, text, threads):
    out, _ = run([cli, "tokenize", "--tokenizer", tokenizer, "--text", text, "--bos", "no"], threads)
    return [int(t) for t in out.split()]


def c4_documents(data, count):
    with open(data / "text/c4/c4_validation_2k.jsonl", encoding="utf-8") as f:
        return [json.loads(line)["text"] for _, line in zip(range(count), f)]


def calibration_text(cli, tokenizer, data, target, threads):
    """The first C4 validation document long enough, cut at a space so that it holds at
    most `target` tokens (and not many fewer): (text, ids)."""
    doc = next(d for d in c4_documents(data, 200) if len(d) > 8 * target)
    chars = 4 * target
    for _ in range(8):
        text = doc[:doc.rfind(" ", 0, chars)]
        ids = tokenize(cli, tokenizer, text, threads)
        if 0.95 * target <= len(ids) <= target:
            return text, ids
        chars = int(chars * (0.97 * target) / len(ids))
    sys.exit(f"could not cut a C4 document to about {target} tokens")


def frequent_tokens(cli, tokenizer, data, count, threads):
    """The `count` most frequent tokens (ties: lowest id) of the first C4 validation
    documents, about 60,000 characters of them: a candidate subset of the kind
    search/candidates.h builds."""
    text = ""
    for doc in c4_documents(data, 200):
        if len(text) > 60000:
            break
        text += doc + " "
    counts = collections.Counter(tokenize(cli, tokenizer, text, threads))
    return sorted(sorted(counts), key=lambda t: -counts[t])[:count]


# --- The baseline: Algorithm 1 on transformers, one candidate at a time. ---

def quant_error(x):
    """Squared error of 8-bit asymmetric min-max fake quantization of x (one tensor, one
    range), in float32: the formula of our quant/fake_quant.cpp, operation for operation."""
    lo, hi = x.min().clamp(max=0), x.max().clamp(min=0)
    scale = ((hi - lo) / 255).clamp(min=1e-10)
    zero_point = torch.round(-lo / scale).clamp(0, 255)
    q = torch.round(x / scale).add_(zero_point).clamp_(0, 255)
    return (x - q.sub_(zero_point).mul_(scale)).pow(2).sum().item()


def cache_keyword(model):
    """transformers 5.2x names the KV cache argument and output `cache`; before, `past_key_values`."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def objective(model, ids, cache, skip):
    """Sum over blocks of the quantization error of each block's input on ids[skip:] (the
    text), run behind a copy of `cache`."""
    past = {cache_keyword(model): copy.deepcopy(cache)}
    out = model(torch.tensor([ids]), **past, output_hidden_states=True, logits_to_keep=1)
    blocks = out.hidden_states[:model.config.num_hidden_layers]  # [L] is the final norm's output
    return sum(quant_error(h[0, skip:]) for h in blocks)


def baseline_step(model, prefix, text, candidates, tau):
    """One greedy step: L(prefix), every candidate's L(prefix + t), the decision."""
    with torch.no_grad():
        cache = model(torch.tensor([prefix]), use_cache=True)[cache_keyword(model)]
        prefix_score = objective(model, text, cache, 0)
        scores = {t: objective(model, [t] + text, cache, 1) for t in candidates}
    best = min(scores, key=lambda t: (scores[t], t))
    return {"prefix_score": prefix_score, "scores": scores, "best_token": best, "best_score": scores[best],
            "accepted": scores[best] < tau * prefix_score}


def baseline_search(model, seed, texts, candidates, tau, max_length):
    """Algorithm 1: grow the prefix while the best candidate beats tau * L(prefix)."""
    prefix, steps = list(seed), []
    while len(prefix) < max_length:
        began = time.perf_counter()
        step = baseline_step(model, prefix, texts[len(steps) % len(texts)], candidates, tau)
        step["seconds"] = time.perf_counter() - began
        steps.append(step)
        if not step["accepted"]:
            break
        prefix.append(step["best_token"])
    return prefix, steps


# --- Ours. ---

def ours_search(cli, model_args, case, text_file, text_tokens, candidates, out, threads):
    """One `cushioncache search` run: (its one step from the state file, wall seconds, command)."""
    artifact = out / f"search-{case}.safetensors"
    state = out / f"search-{case}.search.json"
    state.unlink(missing_ok=True)
    command = [cli, "search", *model_args, "--seed-prefix", "bos", "--max-length", 2, "--tau", TAU, "--data", text_file,
               "--text-tokens", text_tokens, "--out", artifact, "--state", state]
    if candidates is not None:
        command += ["--candidates", ",".join(map(str, candidates))]
    _, wall = run(command, threads)
    steps = json.loads(state.read_text())["result"]["steps"]
    return steps[0], wall, command


def agreement(ours, theirs, tau):
    """The checks of the docstring: (ok, {figures}, one-line summary)."""
    rel = lambda a, b: abs(a - b) / abs(b)
    prefix_rel = rel(ours["prefix_score"], theirs["prefix_score"])
    top = {int(t): s for t, s in ours["top"]}
    score_rel = max((rel(s, theirs["scores"][t]) for t, s in top.items()), default=0.0)
    threshold = tau * theirs["prefix_score"]
    ours_best = ours["best_score"] if ours["best_token"] >= 0 else float("inf")
    floor = min(ours_best, threshold) * (1 - TOLERANCE)
    missed = [t for t, s in theirs["scores"].items() if t not in top and s < floor]
    same_decision = ours["accepted"] == theirs["accepted"]
    same_token = not theirs["accepted"] or ours["best_token"] == theirs["best_token"]
    ok = prefix_rel <= TOLERANCE and score_rel <= TOLERANCE and not missed and same_decision and same_token
    figures = {"prefix_score_rel_diff": prefix_rel, "completed_scores": len(top), "max_score_rel_diff": score_rel,
               "missed_by_pruning": missed, "same_decision": same_decision, "same_token_when_accepted": same_token,
               "ours_best_is_overall_min": ours["best_token"] == theirs["best_token"],
               "theirs_best": [theirs["best_token"], theirs["best_score"]], "threshold": threshold}
    verdict = "accepted" if theirs["accepted"] else "rejected"
    completed = (f"the {len(top)} scores ours completed: max rel diff {score_rel:.1e}" if top else
                 "ours completed none (all pruned above tau L(prefix))")
    ratio = theirs["best_score"] / theirs["prefix_score"]
    if ours["best_token"] == theirs["best_token"]:
        best = f"the same best token {theirs['best_token']}, at {ratio:.3f} L(prefix)"
    elif ours["best_token"] < 0:
        best = f"theirs' best {theirs['best_token']} at {ratio:.3f} L(prefix)"
    else:
        best = f"theirs' best {theirs['best_token']} at {ratio:.3f} L(prefix), ours' best completed {ours['best_token']}"
    summary = f"both {verdict} ({best}); L(prefix) rel diff {prefix_rel:.1e}; {completed}; none lost to pruning"
    if not ok:
        summary = f"DISAGREE: {json.dumps(figures)}"
    return ok, figures, summary


def compare_case(args, case, label, model, model_args, text, ids, candidates, our_candidates):
    """Alternating runs of ours and the baseline: the JSON record and the table row."""
    text_file = args.out / f"search-{case}-text.jsonl"
    text_file.write_text(json.dumps({"text": text}) + "\n")
    records, baseline = [], None
    for rep in range(args.reps):
        first_ours = rep % 2 == 0  # alternate which side meets the machine first
        if first_ours:
            ours, wall, command = ours_search(args.cli_exe, model_args, case, text_file, len(ids), our_candidates, args.out, args.threads)
        _, steps = baseline_search(model, [model.config.bos_token_id], [ids], candidates, TAU, 2)
        if not first_ours:
            ours, wall, command = ours_search(args.cli_exe, model_args, case, text_file, len(ids), our_candidates, args.out, args.threads)
        baseline = steps[0]
        records.append({"ours_s": ours["seconds"], "ours_wall_s": wall, "theirs_s": baseline["seconds"],
                        "ratio": baseline["seconds"] / ours["seconds"], "ours_step": ours})
    if ours["prefix_before"] != [model.config.bos_token_id]:
        sys.exit(f"{case}: ours started from {ours['prefix_before']}, the baseline from BOS {model.config.bos_token_id}")
    if ours["candidates"] != len(candidates):
        sys.exit(f"{case}: ours scored {ours['candidates']} candidates, the baseline {len(candidates)}")
    ok, figures, summary = agreement(ours, baseline, TAU)
    ours_s = statistics.median(r["ours_s"] for r in records)
    theirs_s = statistics.median(r["theirs_s"] for r in records)
    ratio = statistics.median(r["ratio"] for r in records)
    n = len(candidates)
    shown = " ".join(str(c) for c in command[1:]).replace(str(args.out) + "/", "")
    if our_candidates is not None:
        shown = shown.replace(",".join(map(str, our_candidates)), f"<{n} ids>")
    blocks = ours["blocks_evaluated"] / ours["blocks_exhaustive"]
    row = (f"| prefix search | {label}, {n} candidates, {len(ids)} text tokens, 1 step | `cushioncache {shown}` | "
           f"{n / ours_s:.3g} cand/s ({ours_s:.1f} s; {100 * blocks:.0f}% of blocks) | {n / theirs_s:.3g} cand/s ({theirs_s:.1f} s) | "
           f"{ratio:.2f}x | {summary} |")
    record = {"label": label, "candidates": candidates, "text_ids": ids, "reps": records, "ours_s": ours_s, "theirs_s": theirs_s,
              "ours_cand_per_s": n / ours_s, "theirs_cand_per_s": n / theirs_s, "ratio_theirs_over_ours": ratio,
              "agreement": figures, "ok": ok,
              "theirs_scores": {str(t): s for t, s in baseline["scores"].items()}, "theirs_prefix_score": baseline["prefix_score"]}
    return ok, row, record


def load_stories(args, data):
    """stories260K for both: our llama2.c file, and its conversion for transformers."""
    d = data / "models/stories260K"
    hf = args.out / "stories260K-hf"
    run([args.cli_exe, "convert", "--model", d / "stories260K.bin", "--out", hf], args.threads)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(hf), dtype=torch.float32, attn_implementation="eager").eval()
    return model, ["--model", d / "stories260K.bin", "--tokenizer", d / "tok512.bin"], d / "tok512.bin"


def load_smollm2(args):
    gguf = pairs.model_path()  # exits naming scripts/fetch_models.sh when it is missing
    model = transformers.AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
                                                              attn_implementation="eager").eval()
    return model, ["--model", gguf], gguf


def main():
    args = parse_args()
    args.cli_exe = pathlib.Path(args.cli) / "examples/cli/cushioncache"
    if not os.access(args.cli_exe, os.X_OK):
        sys.exit(f"{args.cli_exe} is missing: build the cushioncache_cli target in {args.cli}")
    help_text, _ = run([args.cli_exe, "search", "--help"], args.threads)
    if "--candidates" not in help_text:
        sys.exit(f"{args.cli_exe} search has no --candidates: rebuild {args.cli} from this checkout")
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    data = pairs.data_dir()
    began = time.time()
    results, failed = {}, []

    model, model_args, tokenizer = load_stories(args, data)
    text, ids = calibration_text(args.cli_exe, tokenizer, data, 256 if args.quick else 510, args.threads)
    vocabulary = [t for t in range(model.config.vocab_size) if t not in (0, 1, 2)]  # UNK, BOS, EOS: llama2.c's specials
    ok, row, results["stories260K"] = compare_case(args, "stories260K", "stories260K, whole vocabulary", model, model_args,
                                                   text, ids, vocabulary, None)
    print(row, flush=True)
    failed += [] if ok else ["stories260K"]

    model, model_args, tokenizer = load_smollm2(args)
    text, ids = calibration_text(args.cli_exe, tokenizer, data, 64 if args.quick else 128, args.threads)
    subset = frequent_tokens(args.cli_exe, tokenizer, data, 16 if args.quick else 64, args.threads)
    ok, row, results["smollm2"] = compare_case(args, "smollm2", "SmolLM2-135M, C4's most frequent tokens", model, model_args,
                                               text, ids, subset, subset)
    print(row, flush=True)
    failed += [] if ok else ["smollm2"]

    report = {"name": "search", "threads": args.threads, "reps": args.reps, "quick": args.quick, "tau": TAU,
              "tolerance": TOLERANCE, "torch": torch.__version__, "transformers": transformers.__version__,
              "cases": results, "failed": failed, "goal": "ours >= 10x the baseline's candidates/s",
              "wall_s": time.time() - began}
    (args.out / "search.json").write_text(json.dumps(report, indent=1) + "\n")
    # Keep the state files (our steps, in full) and the texts; the rest is rebuilt on a rerun.
    shutil.rmtree(args.out / "stories260K-hf", ignore_errors=True)
    for case in results:
        (args.out / f"search-{case}.safetensors").unlink(missing_ok=True)
    if failed:
        print(f"numerics disagree: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
