#!/usr/bin/env bash
# The one command a session runs on the GPU machine (docs/gpu.md): prints the versions,
# configures and builds against the machine's own PyTorch LibTorch, runs the [cuda] tests
# and the CUDA build checks, compute-sanitizer memcheck on the [cuda] tests where the
# machine allows it, and the kernel benchmarks; writes summary.md and summary.json (and
# one log per stage) into OUTDIR. It stops at the first failing stage, with that stage's
# log tail in the summary. Sized for 8 minutes on 16 cores.
#
#   scripts/gpu_check.sh OUTDIR             on the GPU machine (after scripts/gpu/stage.sh here,
#                                           with .device carried along)
#   scripts/gpu_check.sh OUTDIR --dry-run   on a CPU machine (CI): every stage that needs no
#                                           GPU, against .venv's torch, reusing build-torch211/;
#                                           the GPU stages print why they are skipped
#
# Environment: CC_GPU_PYTHON (the Python whose torch to build against; default python3,
# or .venv/bin/python in a dry run), CC_GPU_BUILD_DIR (default build-gpu, or build-torch211
# in a dry run), CC_GPU_ARCHS (default: the GPU's own, e.g. 90a on an H100/H200).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
usage() { echo "usage: scripts/gpu_check.sh OUTDIR [--dry-run]" >&2; exit 2; }
[ $# -ge 1 ] || usage
out=$1
dry=0
[ "${2:-}" = "--dry-run" ] && dry=1
[ $# -le 2 ] && { [ $# -eq 1 ] || [ $dry -eq 1 ]; } || usage
mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 2
jobs=$(nproc 2>/dev/null || echo 2)
began=$(date +%s)

if [ $dry -eq 1 ]; then
  mode=dry-run
  python=${CC_GPU_PYTHON:-$root/.venv/bin/python}
  [ -x "$python" ] || python=python3
  build=${CC_GPU_BUILD_DIR:-$root/build-torch211}
else
  mode=gpu
  python=${CC_GPU_PYTHON:-python3}
  build=${CC_GPU_BUILD_DIR:-$root/build-gpu}
fi

stages_json=()  # one JSON object per stage
summary_rows=()
failed_stage=""

json_string() { "$python" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1" 2>/dev/null || printf '"%s"' "${1//\"/\'}"; }

record() {  # name status seconds note
  local name=$1 status=$2 seconds=$3 note=$4
  local log="$name.log"
  [ -f "$out/$log" ] || log=""
  stages_json+=("{\"name\": $(json_string "$name"), \"status\": \"$status\", \"seconds\": $seconds, \"log\": $(json_string "$log"), \"note\": $(json_string "$note")}")
  summary_rows+=("| $name | $status | $seconds | $note |")
  printf '== %-14s %-8s %6s s  %s\n' "$name" "$status" "$seconds" "$note"
}

skip() { record "$1" skipped 0 "$2"; }

write_summary() {
  local status=$1
  local total=$(( $(date +%s) - began ))
  {
    echo "# GPU check ($mode): $status"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $total s in all, on $(hostname). Build folder: ${build#$root/}."
    echo
    echo "| stage | status | seconds | note |"
    echo "|---|---|---|---|"
    printf '%s\n' "${summary_rows[@]}"
    if [ -n "$failed_stage" ]; then
      echo
      echo "## $failed_stage failed: the last lines of $failed_stage.log"
      echo
      echo '```'
      tail -n 60 "$out/$failed_stage.log" 2>/dev/null
      echo '```'
    fi
    if [ -f "$out/versions.log" ]; then
      echo
      echo "## Versions"
      echo
      echo '```'
      cat "$out/versions.log"
      echo '```'
    fi
    for bench in bench_gemm_int8 bench_absmax bench_prefill; do
      [ -f "$out/$bench.log" ] || continue
      echo
      echo "## $bench"
      echo
      echo '```'
      cat "$out/$bench.log"
      echo '```'
    done
  } > "$out/summary.md"
  local joined
  joined=$(IFS=,; echo "${stages_json[*]}")
  cat > "$out/summary.json" <<JSON
{"mode": "$mode", "status": "$status", "failed_stage": $(json_string "$failed_stage"), "total_seconds": $total, "build_dir": $(json_string "$build"), "stages": [$joined]}
JSON
  echo "summary: $out/summary.md ($status, $total s)"
}

# Ends the check at a stage that failed after its command ran (a check on its output).
fail() {  # name note
  failed_stage=$1
  record "$1" FAILED 0 "$2"
  write_summary failed
  exit 1
}

# Runs one stage: its output goes to OUTDIR/<name>.log; a failure (or the time limit)
# ends the check there.
stage() {  # name limit_seconds note command...
  local name=$1 limit=$2 note=$3
  shift 3
  local t0 t1 rc
  t0=$(date +%s.%N)
  timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  local seconds
  seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  if [ $rc -eq 0 ]; then
    record "$name" ok "$seconds" "$note"
    return 0
  fi
  local why="exit code $rc"
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && why="over its ${limit} s limit"
  failed_stage=$name
  record "$name" FAILED "$seconds" "$why; $note"
  tail -n 30 "$out/$name.log" | sed 's/^/    /'
  write_summary failed
  exit 1
}

versions() {
  echo "mode: $mode; $(nproc) cores; $(uname -srm); $(ldd --version 2>&1 | head -n1)"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader
  else
    echo "nvidia-smi: not found (no GPU driver here)"
  fi
  local nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
  "$nvcc" --version 2>&1 | tail -n 2 || echo "nvcc: not found"
  cmake --version | head -n 1
  if command -v ninja >/dev/null; then echo "ninja $(ninja --version)"; else echo "ninja: not found (Makefiles)"; fi
  c++ --version | head -n 1
  "$python" -c 'import sys, torch; print("python", sys.version.split()[0], "| torch", torch.__version__, "| CUDA", torch.version.cuda, "| GPUs visible to torch:", torch.cuda.device_count())'
  if [ -n "$sanitizer" ]; then "$sanitizer" --version | tail -n 1; else echo "compute-sanitizer: not found"; fi
}

sanitizer=$(command -v compute-sanitizer || true)
[ -z "$sanitizer" ] && [ -x /usr/local/cuda/bin/compute-sanitizer ] && sanitizer=/usr/local/cuda/bin/compute-sanitizer
[ -z "$sanitizer" ] && [ -x /usr/local/cuda/compute-sanitizer/compute-sanitizer ] && sanitizer=/usr/local/cuda/compute-sanitizer/compute-sanitizer
echo "gpu_check ($mode): logs and summary in $out"
# Not through `stage` (timeout cannot run a shell function); nothing here can fail the check.
t0=$SECONDS
versions > "$out/versions.log" 2>&1
record versions ok $((SECONDS - t0)) ""
sed 's/^/    /' "$out/versions.log"

# Dependencies: the staged Debian packages on the GPU machine; in a dry run this
# machine's own (and the staged ones too, when present, unpacked into the build folder,
# so that the unpacking is exercised).
if [ $dry -eq 0 ]; then
  stage deps 120 "staged .deb files unpacked" bash -c "source '$root/scripts/gpu/env.sh'"
  # shellcheck source=gpu/env.sh
  source "$root/scripts/gpu/env.sh" || exit 1
elif compgen -G "$root/.device/debs/*.deb" >/dev/null; then
  stage deps 120 "staged .deb files unpacked (dry run: this machine's packages serve the build)" \
    env CC_DEPS_PREFIX="$build/gpu-check-deps" bash -c "source '$root/scripts/gpu/env.sh'"
else
  skip deps "dry run: this machine's Debian packages (nothing staged in .device/debs)"
fi

# The GPU's own arch only, to keep nvcc's share of the build short; CI checks that the
# default archs (sm_80, sm_90a) are all compiled (ctest build.cuda_kernels_have_every_arch).
archs=${CC_GPU_ARCHS:-}
if [ -z "$archs" ] && [ $dry -eq 0 ] && command -v nvidia-smi >/dev/null; then
  case "$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d ' ')" in
    9.0) archs=90a ;;
    8.*) archs=80 ;;
  esac
fi
config=(-DCMAKE_BUILD_TYPE=Release -DCC_TORCH_PYTHON="$python")
[ -n "$archs" ] && config+=(-DCC_CUDA_ARCHITECTURES="$archs")
[ -f "$build/CMakeCache.txt" ] || ! command -v ninja >/dev/null || config+=(-G Ninja)
command -v ccache >/dev/null && config+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
stage configure 180 "against $("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null)${archs:+, archs $archs}" \
  cmake -S "$root" -B "$build" "${config[@]}"
if ! grep -q '^CC_LIBTORCH_CUDA:FILEPATH=/' "$build/CMakeCache.txt"; then
  fail configure "this LibTorch has no libtorch_cuda: not a CUDA build of PyTorch ($python)"
fi
targets=(cushioncache_tests cushioncache_cli bench_gemm_int8 bench_absmax bench_prefill)
stage build 420 "${targets[*]} with $jobs jobs" cmake --build "$build" -j "$jobs" $(printf -- '--target %s ' "${targets[@]}")
if ! ls "$build"/cushioncache/libcushioncache_cuda.so* >/dev/null 2>&1; then
  fail build "no CUDA kernels library: was nvcc found at configure time? (configure.log)"
fi

tests_bin=$build/tests/cushioncache_tests
# The build checks that need no GPU: archs in the kernels, one CUDA runtime and one
# cuBLASLt in the process, --dist-backend's refusals.
stage cuda-ctests 300 "ctest -R 'build\\.|dist_backend' (archs, one runtime, NCCL refusal)" \
  ctest --test-dir "$build" -R '^build\.|dist_backend' --output-on-failure --no-tests=error
if [ $dry -eq 0 ]; then
  # Every [cuda] case must run here: a skip on the GPU machine is a failure.
  stage cuda-tests 180 "[cuda] Catch cases; skips count as failures" \
    "$tests_bin" '[cuda]' --warn NoTests --durations yes
  grep -q "SKIPPED:" "$out/cuda-tests.log" && fail cuda-tests "a [cuda] case skipped on the GPU machine (see cuda-tests.log)"
  if [ -n "$sanitizer" ]; then
    t0=$(date +%s)
    timeout --kill-after=10 240 "$sanitizer" --tool memcheck --error-exitcode 99 --print-limit 20 "$tests_bin" '[cuda]' \
      > "$out/memcheck.log" 2>&1
    rc=$?
    seconds=$(( $(date +%s) - t0 ))
    if [ $rc -eq 0 ]; then
      record memcheck ok "$seconds" "compute-sanitizer --tool memcheck on [cuda]: $(grep -o 'ERROR SUMMARY: [0-9]* error[s]*' "$out/memcheck.log" | tail -n1)"
    elif grep -q "ERROR SUMMARY: [1-9]" "$out/memcheck.log" || [ $rc -eq 99 ]; then
      fail memcheck "memory errors in the [cuda] cases (after $seconds s; memcheck.log)"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
      record memcheck incomplete "$seconds" "over its 240 s limit (memcheck slows kernels many times); no error reported before"
    elif ! grep -q "ERROR SUMMARY" "$out/memcheck.log"; then
      # The tool itself could not attach (no debugger interface in the container, an
      # unsupported driver): not a finding about our code.
      record memcheck unavailable "$seconds" "compute-sanitizer could not run here (exit $rc; see memcheck.log)"
    else
      fail memcheck "the [cuda] cases failed under memcheck (exit $rc after $seconds s; memcheck.log)"
    fi
  else
    skip memcheck "compute-sanitizer is not installed on this machine"
  fi
  stage bench_gemm_int8 150 "--m 1,128,2048 --reps 3" "$build/benchmarks/bench_gemm_int8" --m 1,128,2048 --reps 3
  stage bench_absmax 60 "--max-mb 256 --reps 5" "$build/benchmarks/bench_absmax" --max-mb 256 --reps 5
  stage bench_prefill 150 "LLaMA-7B-shaped, 4 blocks, bfloat16, 2048 tokens" \
    "$build/benchmarks/bench_prefill" --device cuda --dtype bfloat16 --llama7b-layers 4 --seq-len 2048 --reps 3
else
  # Without a GPU the [cuda] cases run their precondition checks and skip the rest (exit 77).
  stage cuda-tests 180 "dry run: the [cuda] cases' precondition checks; the rest skip without a GPU" \
    bash -c "'$tests_bin' '[cuda]' --warn NoTests; rc=\$?; [ \$rc -eq 0 ] || [ \$rc -eq 77 ] || exit \$rc"
  skip memcheck "dry run: needs a GPU"
  stage bench_gemm_int8 120 "dry run: CPU table only, M=1" "$build/benchmarks/bench_gemm_int8" --cpu-only --m 1 --reps 1
  stage bench_absmax 60 "dry run: CPU table only, 1 MB" "$build/benchmarks/bench_absmax" --cpu-only --max-mb 1 --reps 1
  data=${CC_DATA_DIR:-$root/../shared/data}
  if [ -f "$data/models/stories260K/stories260K.bin" ]; then
    stage bench_prefill 120 "dry run: stories260K on the CPU, 32 tokens" \
      env CC_DATA_DIR="$data" "$build/benchmarks/bench_prefill" --device cpu --seq-len 32 --reps 1
  else
    skip bench_prefill "dry run: stories260K not found under $data"
  fi
fi

total=$(( $(date +%s) - began ))
[ $total -le 480 ] || echo "warning: the check took $total s, over the 8 minutes it is sized for" | tee -a "$out/versions.log"
write_summary passed
