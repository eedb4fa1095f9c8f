#!/usr/bin/env python3
"""Our W8A8 linear against PyTorch's own CPU INT8 paths, on the same int8 data.

Ours: Int8LinearKernel as `--exec int8` runs it (quantize the float input per tensor,
8-bit asymmetric with a static scale and zero-point; oneDNN INT8 GEMM with int32
accumulation; dequantizing epilogue), timed by `bench_w8a8_block --cases FILE` from
BUILD_DIR. Theirs, in this Python process (PyTorch from the environment running this):

  _int_mm       what a user writes with torch._int_mm: quantize the input with the same
                scale and zero-point, shift uint8 to int8 (zero-point - 128; _int_mm takes
                int8 only), int32 GEMM against the transposed view of the [N, K] int8
                weight, subtract the zero-point times the weight's row sums, scale to
                float32 (a [K, N] copy of the weight was never faster at M >= 16 in a
                trial run);
  dynamic/ENG   torch.ao.nn.quantized.dynamic.Linear (what quantize_dynamic puts in
                place of nn.Linear) holding the same int8 per-channel weight, under the
                quantized engine ENG: x86, PyTorch's default on this CPU (which runs
                fbgemm's kernels for this op: its output equals the fbgemm engine's bit
                for bit, checked on every case), and onednn. It quantizes its input
                itself, from the input's own range, with reduce_range=True as the module
                hard-codes, so its int8 input differs from ours by up to one step per
                element.

Data: one seeded file of int8 weights (symmetric, per output channel), float inputs and
their static input parameters, read by both sides. Shapes: LLaMA-7B's q/k/v/o, gate/up
and down, SmolLM2-135M's q/o, gate/up, down and k/v; M (tokens) 1, 16, 128, 512, 2048.
Timing: the same thread count on both sides (OMP_NUM_THREADS and at::set_num_threads /
torch.set_num_threads) and the same glibc setting (M_TOP_PAD 1 GiB, which our executables
set: reuse_freed_host_memory); each side's figure is a median of --inner-reps calls after
a warm-up (1 call for cases of M*K*N >= 2^32: LLaMA's from M = 128 or 512, to bound
the run time); the whole of ours, then the whole of theirs, alternating which goes first, --reps
times; the ratio is the median over repetitions of (best of theirs) / ours.

Agreement (exit 1 otherwise):
  _int_mm       max |y_theirs - y_ours| <= 1e-5 max |y_ours| (both compute the same
                integers; only the float32 epilogue rounds), and both equal the exact
                float64 product of the int8 operands on a few rows to the same tolerance;
  dynamic       |y_theirs - y_ours| <= (step_ours + step_theirs) * sum_k |W[n, k]| + 1e-5
                max |y_ours| for every element: each side's input is off by at most one
                quantization step (rounding, plus clamping of a nudged zero-point), with
                step_theirs = range / 127 (reduce_range's 7 bits).

Prints markdown rows | comparison | case | command | ours | theirs | ratio | agreement |
and writes OUT/int8_linear.json with every time and check.
"""
import argparse
import ctypes
import json
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file, save_file

SHAPES = [  # name, K (in), N (out), what it is
    ("llama7b.qkvo", 4096, 4096, "LLaMA-7B q/k/v/o 4096->4096"),
    ("llama7b.gateup", 4096, 11008, "LLaMA-7B gate/up 4096->11008"),
    ("llama7b.down", 11008, 4096, "LLaMA-7B down 11008->4096"),
    ("smollm2.qo", 576, 576, "SmolLM2 q/o 576->576"),
    ("smollm2.gateup", 576, 1536, "SmolLM2 gate/up 576->1536"),
    ("smollm2.down", 1536, 576, "SmolLM2 down 1536->576"),
    ("smollm2.kv", 576, 192, "SmolLM2 k/v 576->192"),
]
M_VALUES = [1, 16, 128, 512, 2048]
M_QUICK = [1, 128]
ENGINES = ["x86", "onednn"]  # timed; fbgemm's output is only compared with x86's
EXACT_TOLERANCE = 1e-5
LARGE = 2 ** 32  # M*K*N from which one timed call per repetition is enough


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cli", required=True, help="our build folder (holds benchmarks/bench_w8a8_block)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=3, help="alternating repetitions of the whole comparison")
    p.add_argument("--inner-reps", type=int, default=3, help="timed calls per case per repetition (median)")
    p.add_argument("--out", required=True, type=pathlib.Path)
    p.add_argument("--quick", action="store_true", help=f"M in {M_QUICK} only")
    return p.parse_args()


def input_params(x):
    """Our static asymmetric 8-bit parameters for x's range (quant/fake_quant.cpp's formula)."""
    lo, hi = x.min().clamp(max=0), x.max().clamp(min=0)
    scale = ((hi - lo) / 255).clamp(min=1e-10)
    zero_point = torch.round(-lo / scale).clamp(0, 255)
    return scale.reshape(1), zero_point.reshape(1)


def make_cases(m_values, files):
    """Seeded int8 weights and float inputs for every shape and M, written to two files:
    files["small"] (timed --inner-reps times) and files["large"] (M*K*N >= LARGE, once)."""
    torch.manual_seed(0)
    tensors, parts = {}, {"small": {}, "large": {}}
    for name, k, n, _ in SHAPES:
        w = torch.randn(n, k) * 0.02
        w_scales = w.abs().amax(1) / 127
        weight = {f"{name}.weight": torch.round(w / w_scales[:, None]).clamp(-127, 127).to(torch.int8),
                  f"{name}.w_scales": w_scales}
        tensors.update(weight)
        for m in m_values:
            x = torch.randn(m, k)
            scale, zero_point = input_params(x)
            case = {f"{name}.m{m}.x": x, f"{name}.m{m}.input": torch.cat([scale, zero_point])}
            tensors.update(case)
            part = parts["large" if m * k * n >= LARGE else "small"]
            part.update(weight)
            part.update(case)
    for size, part in parts.items():
        if part:
            save_file(part, str(files[size]))
    return tensors


def cases_of(tensors, m_values):
    """(case name, shape name, K, N, M, description) in the order the rows are printed."""
    return [(f"{name}.m{m}", name, k, n, m, what) for name, k, n, what in SHAPES for m in m_values]


def median_time(fn, reps):
    """Median wall seconds of `reps` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_ours(bench, files, outputs, threads, inner_reps):
    """One run of our bench over every case (both files): {case: seconds}. Writes each
    file's outputs beside it when `outputs` holds their paths."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    seconds = {}
    for size, reps in (("small", inner_reps), ("large", 1)):
        if not files[size].exists():
            continue
        command = [str(bench), "--cases", str(files[size]), "--reps", str(reps), "--threads", str(threads)]
        if outputs is not None:
            command += ["--outputs", str(outputs[size])]
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        seconds.update({r["case"]: r["seconds"] for r in map(json.loads, done.stdout.splitlines())})
    return seconds


class IntMmLinear:
    """The torch._int_mm path, with everything that depends only on the weight done once."""

    def __init__(self, qweight, w_scales, scale, zero_point):
        self.weight_t = qweight.t()  # _int_mm wants [K, N]: the view of nn.Linear's [N, K]
        self.scale = scale
        self.zero_point = zero_point
        # uint8 q with zero-point z equals int8 (q - 128) with zero-point z - 128.
        self.correction = (zero_point.to(torch.int32) - 128) * qweight.sum(1, dtype=torch.int32)
        self.out_scales = scale * w_scales

    def __call__(self, x):
        q = torch.round(x / self.scale).add_(self.zero_point).clamp_(0, 255)
        acc = torch._int_mm(q.sub_(128).to(torch.int8), self.weight_t)
        return acc.sub_(self.correction).to(torch.float32).mul_(self.out_scales)


def dynamic_linear(engine, qweight, w_scales):
    """quantize_dynamic's module holding our int8 weight (its observer would pick amax/127.5)."""
    torch.backends.quantized.engine = engine
    n, k = qweight.shape
    module = torch.ao.nn.quantized.dynamic.Linear(k, n, bias_=False, dtype=torch.qint8)
    zero_points = torch.zeros(n, dtype=torch.long)
    module.set_weight_bias(torch._make_per_channel_quantized_tensor(qweight, w_scales.double(), zero_points, 0), None)
    held = module.weight()
    if not (torch.equal(held.int_repr(), qweight) and torch.equal(held.q_per_channel_scales().float(), w_scales)):
        sys.exit(f"dynamic Linear ({engine}) does not hold the int8 weight it was given")
    return module


def theirs_for_case(tensors, case, shape):
    """The PyTorch implementations of one case: {name: (callable, engine or None)}."""
    qweight, w_scales = tensors[f"{shape}.weight"], tensors[f"{shape}.w_scales"]
    scale, zero_point = tensors[f"{case}.input"][0:1], tensors[f"{case}.input"][1:2]
    impls = {"_int_mm": (IntMmLinear(qweight, w_scales, scale, zero_point), None)}
    for engine in ENGINES:
        impls[f"dynamic/{engine}"] = (dynamic_linear(engine, qweight, w_scales), engine)
    return impls


def time_theirs(tensors, cases, inner_reps, keep_outputs):
    """{case: {impl: seconds}}, plus each implementation's output for the agreement check
    (and fbgemm's, untimed) when asked."""
    times, outputs = {}, {}
    with torch.no_grad():
        for case, shape, k, n, m, _ in cases:
            x = tensors[f"{case}.x"]
            times[case], outputs[case] = {}, {}
            for impl, (fn, engine) in theirs_for_case(tensors, case, shape).items():
                if engine is not None:
                    torch.backends.quantized.engine = engine  # the engine the weight was packed for
                times[case][impl] = median_time(lambda: fn(x), 1 if m * k * n >= LARGE else inner_reps)
                if keep_outputs:
                    outputs[case][impl] = fn(x)
            if keep_outputs:
                fbgemm = dynamic_linear("fbgemm", tensors[f"{shape}.weight"], tensors[f"{shape}.w_scales"])
                outputs[case]["fbgemm"] = fbgemm(x)
    return times, outputs


def exact_rows(tensors, case, shape, rows):
    """The float64 product of the int8 operands for a few rows (exact integer sums)."""
    x = tensors[f"{case}.x"][rows]
    scale, zero_point = tensors[f"{case}.input"][0], tensors[f"{case}.input"][1]
    q = torch.round(x / scale).add_(zero_point).clamp_(0, 255)
    acc = (q.double() - zero_point.double()) @ tensors[f"{shape}.weight"].double().t()
    return acc * scale.double() * tensors[f"{shape}.w_scales"].double()


def check_case(tensors, case, shape, ours, theirs):
    """Agreement of each implementation with ours: {impl: (ok, figure)}."""
    x = tensors[f"{case}.x"]
    y_max = ours.abs().max().item()
    result = {}
    rows = torch.linspace(0, x.shape[0] - 1, min(4, x.shape[0])).long()
    exact = exact_rows(tensors, case, shape, rows)
    ours_exact = ((ours[rows].double() - exact).abs().max() / y_max).item()
    fbgemm = theirs.pop("fbgemm")
    for impl, y in theirs.items():
        diff = (y - ours).abs()
        if impl.startswith("_int_mm"):
            rel = diff.max().item() / y_max
            exact_rel = ((y[rows].double() - exact).abs().max() / y_max).item()
            ok = rel <= EXACT_TOLERANCE and exact_rel <= EXACT_TOLERANCE and ours_exact <= EXACT_TOLERANCE
            result[impl] = {"ok": ok, "max_rel_diff": rel, "max_rel_diff_exact_rows": exact_rel}
        else:
            step_ours = tensors[f"{case}.input"][0].item()
            step_theirs = (x.max().clamp(min=0) - x.min().clamp(max=0)).item() / 127
            w_l1 = (tensors[f"{shape}.weight"].float().abs().sum(1) * tensors[f"{shape}.w_scales"])
            bound = (step_ours + step_theirs) * w_l1[None, :] + EXACT_TOLERANCE * y_max
            ok = bool((diff <= bound).all())
            result[impl] = {"ok": ok, "max_rel_diff": diff.max().item() / y_max, "max_diff_over_bound": (diff / bound).max().item()}
    # Which kernels the x86 engine runs for this op: the same output bit for bit as
    # fbgemm's says so (onednn's, for contrast).
    result["dynamic/x86"]["bitwise_equal_fbgemm"] = bool(torch.equal(theirs["dynamic/x86"], fbgemm))
    result["dynamic/x86"]["bitwise_equal_onednn"] = bool(torch.equal(theirs["dynamic/x86"], theirs["dynamic/onednn"]))
    result["dynamic/x86"]["ok"] &= result["dynamic/x86"]["bitwise_equal_fbgemm"]  # else the docstring's claim is wrong
    return result, ours_exact


def versions(bench):
    """What ran on each side: PyTorch and its oneDNN; the oneDNN library our bench links."""
    onednn = re.search(r"MKL-DNN v[\d.]+", torch.__config__.show())
    linked = subprocess.run(["ldd", str(bench)], stdout=subprocess.PIPE, text=True).stdout
    return {"torch": torch.__version__, "theirs_onednn": onednn.group(0) if onednn else None, "python": platform.python_version(),
            "ours": str(bench), "ours_onednn": [line.strip() for line in linked.splitlines() if "dnnl" in line],
            "machine": platform.machine(), "cpu_count": os.cpu_count()}


def summarize(cases, ours_runs, theirs_runs):
    """Per case: medians over repetitions of each time and of (best of theirs) / ours."""
    summary = {}
    for case, *_ in cases:
        ours = [run[case] for run in ours_runs]
        impls = theirs_runs[0][case].keys()
        per_impl = {impl: statistics.median(run[case][impl] for run in theirs_runs) for impl in impls}
        best_per_rep = [min(run[case].values()) for run in theirs_runs]
        ratios = [b / o for b, o in zip(best_per_rep, ours)]
        best_impl = min(per_impl, key=per_impl.get)
        summary[case] = {"ours_s": statistics.median(ours), "theirs_s": per_impl, "best": best_impl,
                         "ratio_best_over_ours": statistics.median(ratios), "ratios_per_rep": ratios,
                         "ours_per_rep": ours, "theirs_per_rep": [run[case] for run in theirs_runs]}
    return summary


def ms(seconds):
    return f"{1e3 * seconds:.3g} ms"


def main():
    args = parse_args()
    bench = pathlib.Path(args.cli) / "benchmarks/bench_w8a8_block"
    if not os.access(bench, os.X_OK):
        sys.exit(f"{bench} is missing: build the bench_w8a8_block target in {args.cli}")
    if "--cases" not in subprocess.run([str(bench), "--help"], stdout=subprocess.PIPE, text=True).stdout:
        sys.exit(f"{bench} has no --cases: rebuild {args.cli} from this checkout")
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    # The allocator setting of our executables (core/allocator.cpp), for the same footing.
    ctypes.CDLL("libc.so.6").mallopt(-2, 1 << 30)  # M_TOP_PAD
    args.out.mkdir(parents=True, exist_ok=True)
    m_values = M_QUICK if args.quick else M_VALUES
    began = time.time()

    files = {size: args.out / f"int8_linear_cases_{size}.safetensors" for size in ("small", "large")}
    outputs_files = {size: args.out / f"int8_linear_ours_y_{size}.safetensors" for size in ("small", "large")}
    for f in (*files.values(), *outputs_files.values()):
        f.unlink(missing_ok=True)
    tensors = make_cases(m_values, files)
    cases = cases_of(tensors, m_values)
    ours_runs, theirs_runs, outputs = [], [], None
    for rep in range(args.reps):
        # Alternate which side goes first, so neither always meets a warmer or colder machine.
        first_ours = rep % 2 == 0
        if first_ours:
            ours_runs.append(run_ours(bench, files, outputs_files if rep == 0 else None, args.threads, args.inner_reps))
        times, out = time_theirs(tensors, cases, args.inner_reps, keep_outputs=rep == 0)
        theirs_runs.append(times)
        outputs = outputs or out
        if not first_ours:
            ours_runs.append(run_ours(bench, files, None, args.threads, args.inner_reps))

    ours_y = {}
    for f in outputs_files.values():
        if f.exists():
            ours_y.update(load_file(str(f)))
    summary = summarize(cases, ours_runs, theirs_runs)
    failed = []
    for case, shape, k, n, m, what in cases:
        checks, ours_exact = check_case(tensors, case, shape, ours_y[f"{case}.y"], outputs[case])
        s = summary[case]
        s.update({"m": m, "k": k, "n": n, "shape": what, "agreement": checks, "ours_vs_exact_rows": ours_exact})
        bad = [impl for impl, c in checks.items() if not c["ok"]]
        failed += [f"{case} {impl}" for impl in bad]
        theirs = ", ".join(f"{impl} {ms(t)}" for impl, t in s["theirs_s"].items())
        exact = max(c["max_rel_diff"] for i, c in checks.items() if i.startswith("_int_mm"))
        within = max(c["max_diff_over_bound"] for i, c in checks.items() if not i.startswith("_int_mm"))
        agreement = f"_int_mm max rel diff {exact:.1e}; dynamic within bound (max {within:.2f} of it)"
        if bad:
            agreement = "DISAGREE: " + ", ".join(bad) + "; " + agreement
        reps = 1 if m * k * n >= LARGE else args.inner_reps
        command = f"bench_w8a8_block --cases int8_linear_cases_{'large' if reps == 1 else 'small'}.safetensors --reps {reps} --threads {args.threads}"
        print(f"| int8 linear | {what}, M={m} | `{command}` | {ms(s['ours_s'])} | best {s['best']} "
              f"{ms(s['theirs_s'][s['best']])} ({theirs}) | {s['ratio_best_over_ours']:.2f}x | {agreement} |", flush=True)

    report = {"name": "int8_linear", "threads": args.threads, "reps": args.reps, "inner_reps": args.inner_reps,
              "quick": args.quick, "versions": versions(bench), "tolerance": EXACT_TOLERANCE, "cases": summary,
              "failed": failed, "goal": "ours >= best of theirs at every M >= 16",
              "goal_missed": [c for c, s in summary.items() if s["m"] >= 16 and s["ratio_best_over_ours"] < 1],
              "wall_s": time.time() - began}
    (args.out / "int8_linear.json").write_text(json.dumps(report, indent=1) + "\n")
    for f in (*files.values(), *outputs_files.values()):
        f.unlink(missing_ok=True)  # hundreds of MB; regenerated from the seed
    if failed:
        print(f"numerics disagree: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
