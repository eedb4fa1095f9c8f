#!/usr/bin/env bash
# Side by side with what users would otherwise run: prints one markdown table of our
# library against PyTorch and transformers, comparisons 1-4 in order, each from its own
# script under benchmarks/compare/ (skipped with a note when the script is absent):
#   1 compare_forward.py      WikiText-2 perplexity, float32: our eval vs transformers
#   2 compare_int8_linear.py  our W8A8 linear vs PyTorch's CPU INT8 paths
#   3 compare_search.py       our prefix search vs the same search written on transformers
#   4 compare_fake_quant.py   our w8a8-per-tensor-dynamic vs the same with PyTorch ops
# Each script takes --cli BUILD --threads N --reps R --out DIR [--quick], prints table
# rows, writes DIR/<name>.json and exits 1 when the numerics disagree; this driver keeps
# going and fails at the end, after printing everything.
#
#   benchmarks/compare/run.sh [--build build] [--threads 2] [--reps 3] [--quick] [--out DIR]
#
# OpenMP's threads wait passively (OMP_WAIT_POLICY=PASSIVE) unless OMP_WAIT_POLICY is
# set: on a shared machine, spinning OpenMP threads made both sides about 10x slower
# (docs/benchmarks.md). Needs .venv (scripts/setup.sh python) and a built CLI.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=build threads=2 reps=3 quick=() out=
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) quick=(--quick); shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
cd "$root" || exit 3
out=${out:-$build/compare}
python=${PYTHON:-$root/.venv/bin/python}
[ -x "$python" ] || { echo "run.sh: $python not found: run scripts/setup.sh python" >&2; exit 3; }
[ -x "$build/examples/cli/cushioncache" ] || { echo "run.sh: $build/examples/cli/cushioncache not built" >&2; exit 3; }
scripts/fetch_models.sh >/dev/null || { echo "run.sh: scripts/fetch_models.sh failed" >&2; exit 3; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
mkdir -p "$out"

started=$(date +%s)
echo "Side by side with PyTorch and transformers: $(date -u +%Y-%m-%d), $threads threads," \
     "$reps repetitions${quick:+, --quick}, OMP_WAIT_POLICY=$OMP_WAIT_POLICY, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)," \
     "torch $("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null)," \
     "transformers $("$python" -c 'import transformers; print(transformers.__version__)' 2>/dev/null)"
echo
echo "| comparison | case | command | ours | theirs | ratio (theirs/ours time) | agreement |"
echo "|---|---|---|---|---|---|---|"
failed=()
for name in compare_forward compare_int8_linear compare_search compare_fake_quant; do
  script=$here/$name.py
  if [ ! -f "$script" ]; then
    echo "| $name | - | - | - | - | - | not run: $name.py is absent |"
    continue
  fi
  # Progress goes to stderr; the rows to stdout (and to a copy, to see whether any came).
  "$python" "$script" --cli "$build" --threads "$threads" --reps "$reps" --out "$out" "${quick[@]}" | tee "$out/$name.rows"
  status=${PIPESTATUS[0]}
  if [ "$status" -ne 0 ]; then
    failed+=("$name (exit $status)")
    grep -q '^|' "$out/$name.rows" || echo "| $name | - | - | - | - | - | FAILED before any row (exit $status): see its stderr |"
  fi
done
echo
echo "Total $(( $(date +%s) - started )) s; JSON per comparison in $out/."
if [ ${#failed[@]} -gt 0 ]; then
  echo "run.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
