"""Shared harness of the perplexity comparisons (compare_forward.py, compare_fake_quant.py).

A pair is our `cushioncache eval` and hf_perplexity.py (transformers) on the same model
and the same token ids. Each runs as its own child process, so that its peak resident
memory is its own (read through LAUNCHER below); the two alternate within each repetition, the order
swapped every repetition so that a slow spell of this shared machine hits both sides.
Time is each side's own evaluation loop (our JSON's "seconds"; hf_perplexity.py times
the same loop), not loading; memory is the whole process's peak, loading included.
"""
import argparse
import dataclasses
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TOLERANCE = 1e-4  # relative perplexity difference allowed where the numerics are deterministic
SPREAD_RUNS = 6   # transformers' perturbed evaluations per case with rounded activations
SPREAD_SIGMAS = 4  # ours must lie within this many of their standard deviations of their mean
MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
HEADER = "| comparison | case | command | ours | theirs | ratio (theirs/ours time) | agreement |"


def parse_args(description):
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cli", default=str(ROOT / "build"), help="our build folder (holds examples/cli/cushioncache)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "build/compare"))
    parser.add_argument("--quick", action="store_true", default=os.environ.get("CC_COMPARE_QUICK") == "1",
                        help="fewer windows and cases (also CC_COMPARE_QUICK=1)")
    parser.add_argument("--header", action="store_true", help="print the table header first (run.sh prints it once)")
    args = parser.parse_args()
    args.exe = pathlib.Path(args.cli) / "examples/cli/cushioncache"
    args.out = pathlib.Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    if not os.access(args.exe, os.X_OK):
        raise SystemExit(f"{args.exe} is not an executable: build the cushioncache_cli target")
    return args


def data_dir():
    return pathlib.Path(os.environ.get("CC_DATA_DIR") or ROOT.parent / "shared/data")


def model_path():
    model_dir = pathlib.Path(os.environ.get("CC_MODEL_DIR") or pathlib.Path.home() / ".cache/cushioncache/models")
    path = model_dir / MODEL_NAME
    if not path.exists():
        raise SystemExit(f"{path} not found: run scripts/fetch_models.sh")
    return path


def thread_env(threads):
    """The same thread count for every threading layer either side may use.

    Our Debian LibTorch reads OMP_NUM_THREADS (OpenMP) and calls OpenBLAS; PyTorch's
    wheel uses OpenMP and MKL; hf_perplexity.py also calls torch.set_num_threads.
    """
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    return env


# Runs the command as its child and writes that child's exit status, CPU time and peak
# RSS (wait4) to the file argv[1]. A process exec'd from a fork of a large process keeps
# the larger peak of the two (Linux carries ru_maxrss across exec), and this harness holds
# a tokenizer and models: so the measured command is forked from this small launcher.
LAUNCHER = """import json, os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"exit": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss,
               "cpu_s": usage.ru_utime + usage.ru_stime}, f)
"""


def run_measured(command, env, log_path):
    """Runs one command; returns its stdout, wall and CPU seconds and its own peak RSS."""
    usage_path = pathlib.Path(f"{log_path}.usage.json")
    began = time.perf_counter()
    with open(log_path, "w") as log:
        done = subprocess.run([sys.executable, "-c", LAUNCHER, str(usage_path), *map(str, command)],
                              stdout=subprocess.PIPE, stderr=log, env=env, text=True)
    wall = time.perf_counter() - began
    usage = json.loads(usage_path.read_text()) if usage_path.exists() else {"exit": done.returncode}
    if done.returncode != 0 or usage["exit"] != 0:
        tail = pathlib.Path(log_path).read_text(errors="replace")[-3000:]
        raise SystemExit(f"exit {usage['exit']}: {' '.join(map(str, command))}\n{tail}")
    return {"stdout": done.stdout, "wall_s": wall, "cpu_s": usage["cpu_s"], "peak_rss_bytes": usage["maxrss_kib"] * 1024}


_tokenized = {}  # (tokenizer, corpus) -> ids: each is tokenized once per process


def our_ids(args, tokenizer, corpus_file, count):
    """Our tokenizer's ids of a corpus (BOS as our eval adds it: --bos auto), the first `count`."""
    key = ("ours", str(tokenizer), str(corpus_file))
    if key not in _tokenized:
        done = subprocess.run([str(args.exe), "--log-level", "warn", "tokenize", "--tokenizer", str(tokenizer), "--file",
                               str(corpus_file)], check=True, capture_output=True, text=True)
        _tokenized[key] = np.array([int(t) for t in done.stdout.split()], dtype=np.int64)
    ids = _tokenized[key]
    if len(ids) < count:
        raise SystemExit(f"{corpus_file} gives {len(ids)} tokens, fewer than {count}")
    return ids[:count]


def transformers_ids(gguf, corpus_file):
    key = ("transformers", str(gguf), str(corpus_file))
    if key not in _tokenized:
        import transformers  # deferred: only the SmolLM2 cases need it in this process
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        text = pathlib.Path(corpus_file).read_text(encoding="utf-8")
        _tokenized[key] = np.array(tokenizer(text).input_ids, dtype=np.int64)
    return _tokenized[key]


def wikitext2():
    """The file our eval reads for `--ppl wikitext2` (cushioncache/io/corpus.cpp): the test
    rows already joined with "\\n\\n", as GPTQ's scripts join them."""
    path = data_dir() / "text/wikitext-2-raw/wiki.test.gptq.txt"
    if not path.exists():
        raise SystemExit(f"{path} not found (set CC_DATA_DIR)")
    return path


def converted(args, model, name):
    """Our `convert` of a .gguf or llama2.c .bin to a Hugging Face folder, made once under OUT."""
    folder = args.out / "hf" / name
    if not (folder / "model.safetensors").exists():
        subprocess.run([str(args.exe), "--log-level", "warn", "convert", "--model", str(model), "--out", str(folder)],
                       check=True)
    return folder


def save_ids(args, name, ids):
    path = args.out / f"{name}.{len(ids)}.ids.npy"
    np.save(path, np.asarray(ids, dtype=np.int64))
    return path


def smollm2_ids(args, count):
    """transformers' own tokenizer of the .gguf (not ours), checked against ours.

    SmolLM2's tokenizer puts no BOS first, and neither side adds one. Returns the ids'
    file and a note saying whether our tokenizer gives the same ids for these windows.
    """
    gguf = model_path()
    theirs = transformers_ids(gguf, wikitext2())[:count]
    ours = our_ids(args, gguf, wikitext2(), count)
    same = bool(np.array_equal(theirs, ours))
    note = "token ids: transformers' tokenizer of the .gguf; ours " + ("identical" if same else "DIFFERENT") + \
        f" over the {count} evaluated tokens"
    return save_ids(args, "smollm2", theirs), same, note


def stories_files():
    folder = data_dir() / "models/stories260K"
    model, tokenizer = folder / "stories260K.bin", folder / "tok512.bin"
    if not model.exists() or not tokenizer.exists():
        raise SystemExit(f"{folder} lacks stories260K.bin or tok512.bin (set CC_DATA_DIR)")
    return model, tokenizer


def tok512_ids(args, count):
    """transformers cannot read llama2.c's tok512.bin, so both sides use our tokenizer's
    ids here (BOS first, as our eval's --bos auto puts it for this tokenizer)."""
    _, tokenizer = stories_files()
    note = "token ids: our tokenizer (tok512.bin), BOS first; transformers reads no llama2.c tokenizer"
    return save_ids(args, "tok512", our_ids(args, tokenizer, wikitext2(), count)), note


@dataclasses.dataclass
class Case:
    comparison: str
    name: str
    ours: list            # our eval's arguments after the executable
    hf_model: pathlib.Path
    ids: pathlib.Path     # .npy of the token ids both sides evaluate
    seq_len: int
    windows: int
    quant: str = "none"   # hf_perplexity.py's --quant
    chaotic: bool = False  # rounding activations: compare against transformers' own spread
    ids_agree: object = None  # True/False: our tokenizer's ids equal theirs; None: not compared
    reps: int = 0          # 0: --reps; 1 for a row that checks numerics more than time
    notes: list = dataclasses.field(default_factory=list)

    def tokens(self):
        return self.seq_len * self.windows


def our_result(json_path):
    run = json.loads(pathlib.Path(json_path).read_text())["runs"][0]
    ppl = run["perplexity"]["wikitext2"]
    return ppl["ppl"], ppl["seconds"]


def run_ours(args, case, rep):
    json_path = args.out / f"{slug(case)}.ours.{rep}.json"
    command = [args.exe, "--log-level", "warn", "eval", *case.ours, "--out", json_path]
    m = run_measured(command, thread_env(args.threads), args.out / f"{slug(case)}.ours.{rep}.log")
    m["ppl"], m["eval_s"] = our_result(json_path)
    del m["stdout"]
    return m


def run_theirs(args, case, rep, spread=0):
    command = [sys.executable, HERE / "hf_perplexity.py", "--model-dir", case.hf_model, "--ids", case.ids,
               "--seq-len", case.seq_len, "--windows", case.windows, "--threads", args.threads, "--quant", case.quant,
               "--spread", spread]
    m = run_measured(command, thread_env(args.threads), args.out / f"{slug(case)}.theirs.{rep}.log")
    result = json.loads(m.pop("stdout").strip().splitlines()[-1])
    m["ppl"], m["eval_s"], m["spread"] = result["ppl"], result["seconds"], result["spread"]
    return m


def slug(case):
    text = f"{case.comparison} {case.name}".lower()
    return "-".join("".join(c if c.isalnum() else " " for c in text).split())


def run_case(args, case):
    """Alternating repetitions, then, for rounded activations, one more transformers run
    that measures its own spread under float noise (left out of the timing)."""
    ours, theirs = [], []
    reps = case.reps or args.reps
    for rep in range(reps):
        if rep % 2 == 0:
            ours.append(run_ours(args, case, rep))
            theirs.append(run_theirs(args, case, rep))
        else:
            theirs.append(run_theirs(args, case, rep))
            ours.append(run_ours(args, case, rep))
        print(f"  {case.comparison} / {case.name} rep {rep + 1}/{reps}: ours {ours[-1]['eval_s']:.2f} s "
              f"ppl {ours[-1]['ppl']:.6f}, theirs {theirs[-1]['eval_s']:.2f} s ppl {theirs[-1]['ppl']:.6f}",
              file=sys.stderr, flush=True)
    spread = run_theirs(args, case, "spread", SPREAD_RUNS) if case.chaotic else None
    return summarize(case, ours, theirs, spread)


def agreement(case, ours_ppl, theirs_ppl, spread):
    """(ok, text). Deterministic numerics: relative difference <= TOLERANCE. Rounded
    activations: ours must lie within SPREAD_SIGMAS standard deviations of the mean of
    transformers' own runs, unperturbed and perturbed (a difference in definition, a
    missing site say, moves the perplexity far more than float noise does)."""
    rel = abs(ours_ppl - theirs_ppl) / theirs_ppl
    if spread is None:
        return rel <= TOLERANCE, f"ppl rel. diff {rel:.1e} (<= {TOLERANCE:g}: {'yes' if rel <= TOLERANCE else 'NO'})"
    runs = [theirs_ppl] + spread["spread"]
    mean, sigma = statistics.mean(runs), statistics.stdev(runs)
    z = abs(ours_ppl - mean) / sigma if sigma > 0 else float("inf")
    ok = rel <= TOLERANCE or z <= SPREAD_SIGMAS
    return ok, (f"ppl rel. diff {rel:.1e}; transformers under 1e-6 noise on its embeddings, {len(runs)} runs: "
                f"{min(runs):.4f} to {max(runs):.4f}, mean {mean:.4f}, sd {sigma:.2g}; ours {z:.1f} sd from their "
                f"mean (<= {SPREAD_SIGMAS}: {'yes' if ok else 'NO'})")


def summarize(case, ours, theirs, spread):
    ratio = statistics.median(t["eval_s"] / o["eval_s"] for o, t in zip(ours, theirs))
    ok, agree = agreement(case, ours[0]["ppl"], theirs[0]["ppl"], spread)
    if case.ids_agree is not None:
        ok, agree = ok and case.ids_agree, agree + ("; token ids equal" if case.ids_agree else "; token ids DIFFER")
    for side in (ours, theirs):
        repeated = [r["ppl"] for r in side]
        if (max(repeated) - min(repeated)) / min(repeated) > TOLERANCE:
            ok, agree = False, agree + "; repetitions of one side differ"
    summary = {"comparison": case.comparison, "case": case.name, "tokens_per_run": case.tokens(), "seq_len": case.seq_len,
               "windows": case.windows, "ours_command": " ".join(map(shown, case.ours)), "quant": case.quant,
               "ratio_theirs_over_ours_time": ratio, "agreement": agree, "ok": ok, "notes": case.notes,
               "ours": ours, "theirs": theirs, "theirs_spread": spread}
    return summary


def startup_rss(args):
    """Peak RSS of each side doing nothing: our CLI printing --help (LibTorch and the CUDA
    libraries it links, mapped), Python importing torch and transformers. Small models'
    peaks are mostly this."""
    env = thread_env(args.threads)
    ours = run_measured([args.exe, "--help"], env, args.out / "startup.ours.log")
    theirs = run_measured([sys.executable, "-c", "import numpy, torch, transformers"], env, args.out / "startup.theirs.log")
    return {"ours": ours["peak_rss_bytes"], "theirs": theirs["peak_rss_bytes"]}


def side_cell(runs, tokens, startup):
    eval_s = statistics.median(r["eval_s"] for r in runs)
    rss = statistics.median(r["peak_rss_bytes"] for r in runs)
    return (f"{tokens / eval_s:,.0f} tok/s, peak RSS {rss / 2**20:,.0f} MiB (+{(rss - startup) / 2**20:,.0f} over "
            f"startup), ppl {runs[0]['ppl']:.4f}")


def shown(argument):
    """A path as its file name, so that the table does not carry this machine's folders."""
    text = str(argument)
    return pathlib.Path(text).name if "/" in text else text


def row(summary, startup):
    command = f"`cushioncache eval {summary['ours_command']}`"
    ratio = f"{summary['ratio_theirs_over_ours_time']:.2f}x" + (" (1 rep)" if len(summary["ours"]) == 1 else "")
    cells = [summary["comparison"], summary["case"], command,
             side_cell(summary["ours"], summary["tokens_per_run"], startup["ours"]),
             side_cell(summary["theirs"], summary["tokens_per_run"], startup["theirs"]), ratio, summary["agreement"]]
    return "| " + " | ".join(cells) + " |"


def main(name, description, build_cases):
    """Runs every case, prints the rows, writes OUT/<name>.json; exit 1 if any disagree."""
    args = parse_args(description)
    if args.header:
        print(HEADER)
        print("|" + "---|" * 7)
    cases = build_cases(args)
    startup = startup_rss(args)
    summaries = []
    for case in cases:
        summary = run_case(args, case)
        summaries.append(summary)
        print(row(summary, startup), flush=True)
    report = {"threads": args.threads, "reps": args.reps, "quick": args.quick, "startup_rss_bytes": startup,
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "cases": summaries,
              "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()}}
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0 if all(s["ok"] for s in summaries) else 1
