// INT8 GEMM throughput on the projection shapes of LLaMA-2-7B and LLaMA-3-8B, y = a w^T
// with a [M, K] and w [N, K], for every M a user runs (decode row to long prefill):
//   CPU: oneDNN int8 (s8 x s8 -> s32, dequantizing epilogue) vs torch float32 (at::mm);
//   GPU, when this build has the CUDA kernels and a device is present: our tensor-core
//   kernel, cuBLASLt int8 (+ our epilogue), cuBLASLt bfloat16.
// TOPS count 2 M N K operations; every row is the median of --reps timed runs after one
// warm-up, all in one process so the columns share the machine's state.
//
//   bench_gemm_int8 [--m 1,16,128,512,2048,4096] [--reps 5] [--threads 0] [--cpu-only]
//                   [--int8-peak-tops X]
#include <cstdio>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>  // c10::NoGradGuard: ATen.h no longer brings it in PyTorch 2.x
#include <CLI/CLI.hpp>

#include "cushioncache/core/allocator.h"
#include "cushioncache/core/error.h"
#include "cushioncache/kernels/int8_gemm.h"
#include "bench_common.h"

#ifdef CC_HAVE_CUDA_KERNELS
#include "bench_cuda.h"
#include "cushioncache/kernels/cuda/int8_gemm_kernels.h"
#endif

namespace cc = cushioncache;

namespace {

struct Shape {
  const char* model;
  const char* layer;
  std::int64_t k, n;
};

// The projections whose K and N are 4096, 11008 or 14336 (LLaMA-3-8B's k/v, 4096 -> 1024,
// are left out: GQA makes them a small share of the work).
const std::vector<Shape> kShapes{
    {"llama-2-7b", "q/k/v/o", 4096, 4096},    {"llama-2-7b", "gate/up", 4096, 11008}, {"llama-2-7b", "down", 11008, 4096},
    {"llama-3-8b", "gate/up", 4096, 14336},   {"llama-3-8b", "down", 14336, 4096},
};

double tops(std::int64_t m, const Shape& s, double seconds) {
  return 2.0 * static_cast<double>(m) * static_cast<double>(s.n) * static_cast<double>(s.k) / seconds / 1e12;
}

void run_cpu(const std::vector<std::int64_t>& ms, int reps) {
  if (!cc::kernels::cpu_int8_gemm_available())
    cc::throw_error(cc::ErrorKind::kUnsupported, "this build has no oneDNN: install libdnnl-dev and reconfigure");
  const c10::Device cpu(c10::kCPU);
  std::printf("CPU: %d intra-op threads; oneDNN int8 (s8 x s8 -> s32, per-channel weight scales) vs torch float32 at::mm\n\n",
              at::get_num_threads());
  std::printf("%-11s %-8s %6s %6s %6s %12s %12s %12s %12s %8s\n", "model", "layer", "M", "K", "N", "f32 ms", "f32 TOPS", "int8 ms",
              "int8 TOPS", "speedup");
  for (const Shape& s : kShapes) {
    at::manual_seed(0);
    const at::Tensor wf = at::randn({s.n, s.k}) * 0.02;
    const at::Tensor wq = at::randint(-127, 128, {s.n, s.k}, at::kChar);
    const at::Tensor w_scales = at::rand({s.n}) * 1e-3 + 1e-4;
    for (std::int64_t m : ms) {
      const at::Tensor af = at::randn({m, s.k});
      const at::Tensor aq = at::randint(-127, 128, {m, s.k}, at::kChar);
      at::Tensor y = at::empty({m, s.n});
      cc::kernels::Int8Gemm g;
      g.m = m, g.n = s.n, g.k = s.k;
      g.a = aq.data_ptr();
      g.a_scale = 0.01f;
      g.w = wq.data_ptr<std::int8_t>();
      g.w_scales = w_scales.data_ptr<float>();
      g.w_per_channel = true;
      g.y = y.data_ptr<float>();
      const double t_float = cc::bench::median_seconds(reps, cpu, [&] { (void)at::mm(af, wf.t()); });
      const double t_int8 = cc::bench::median_seconds(reps, cpu, [&] { cc::kernels::int8_gemm_cpu(g); });
      std::printf("%-11s %-8s %6lld %6lld %6lld %12.3f %12.3f %12.3f %12.3f %7.2fx\n", s.model, s.layer, static_cast<long long>(m),
                  static_cast<long long>(s.k), static_cast<long long>(s.n), 1e3 * t_float, tops(m, s, t_float), 1e3 * t_int8,
                  tops(m, s, t_int8), t_float / t_int8);
      std::fflush(stdout);
    }
  }
}

#ifdef CC_HAVE_CUDA_KERNELS
namespace cuda = cc::kernels::cuda;
using cc::bench::check_cuda_call;
using cc::bench::DeviceMemory;
using cc::bench::median_gpu_seconds;

// Dense INT8 tensor-core peak of the cards this project is run on (NVIDIA's datasheets,
// without sparsity), by device name; --int8-peak-tops overrides it.
double datasheet_int8_peak(const std::string& name) {
  if (name.find("H100") != std::string::npos) return name.find("PCIe") != std::string::npos ? 1513.0 : 1979.0;
  if (name.find("H200") != std::string::npos) return 1979.0;
  if (name.find("A100") != std::string::npos) return 624.0;
  return 0.0;
}



void run_gpu(const std::vector<std::int64_t>& ms, int reps, double peak_override) {
  cudaDeviceProp prop{};
  check_cuda_call(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  const double peak = peak_override > 0 ? peak_override : datasheet_int8_peak(prop.name);
  std::printf("\nGPU: %s (sm_%d%d); int8 peak %s TOPS; output bfloat16, per-channel weight scales, static activation scale\n\n",
              prop.name, prop.major, prop.minor, peak > 0 ? std::to_string(static_cast<int>(peak)).c_str() : "unknown (pass --int8-peak-tops)");
  std::printf("%-11s %-8s %6s %6s %6s %10s %10s %10s %10s %10s %9s %9s\n", "model", "layer", "M", "K", "N", "bf16 TOPS", "lt-i8 TOPS",
              "ours TOPS", "ours/bf16", "lt/bf16", "ours %pk", "auto");
  const std::int64_t max_m = *std::max_element(ms.begin(), ms.end());
  std::int64_t max_k = 0, max_n = 0;
  for (const Shape& s : kShapes) max_k = std::max(max_k, s.k), max_n = std::max(max_n, s.n);
  // Contents do not change the time of a dense GEMM; a fixed byte pattern is enough.
  DeviceMemory a(static_cast<std::size_t>(max_m * max_k * 2)), w(static_cast<std::size_t>(max_n * max_k * 2)),
      y(static_cast<std::size_t>(max_m * max_n * 4)), scales(static_cast<std::size_t>(max_n * 4));
  check_cuda_call(cudaMemset(a.ptr, 0x11, static_cast<std::size_t>(max_m * max_k * 2)), "cudaMemset");
  check_cuda_call(cudaMemset(w.ptr, 0x13, static_cast<std::size_t>(max_n * max_k * 2)), "cudaMemset");
  check_cuda_call(cudaMemset(scales.ptr, 0, static_cast<std::size_t>(max_n * 4)), "cudaMemset");
  cuda::Int8GemmRunner runner;
  for (const Shape& s : kShapes)
    for (std::int64_t m : ms) {
      cuda::GemmS8S8 p;
      p.m = m, p.n = s.n, p.k = s.k;
      p.a = a.ptr;
      p.a_scale = static_cast<const float*>(scales.ptr);
      p.w = static_cast<const std::int8_t*>(w.ptr);
      p.w_scales = static_cast<const float*>(scales.ptr);
      p.w_per_channel = true;
      p.y = y.ptr;
      p.y_type = cuda::FloatType::kBFloat16;
      const double t_bf16 = median_gpu_seconds(reps, [&] { runner.bf16_gemm(m, s.n, s.k, a.ptr, w.ptr, y.ptr, nullptr); });
      const double t_lt = median_gpu_seconds(reps, [&] { runner.run(p, cuda::GemmBackend::kCublasLt, nullptr); });
      const double t_ours = median_gpu_seconds(reps, [&] { runner.run(p, cuda::GemmBackend::kTensorCore, nullptr); });
      const double ours = tops(m, s, t_ours);
      std::printf("%-11s %-8s %6lld %6lld %6lld %10.1f %10.1f %10.1f %9.2fx %9.2fx %8.0f%% %9s\n", s.model, s.layer,
                  static_cast<long long>(m), static_cast<long long>(s.k), static_cast<long long>(s.n), tops(m, s, t_bf16), tops(m, s, t_lt),
                  ours, t_bf16 / t_ours, t_bf16 / t_lt, peak > 0 ? 100.0 * ours / peak : 0.0,
                  runner.pick(p) == cuda::GemmBackend::kCublasLt ? "cublaslt" : "ours");
      std::fflush(stdout);
    }
}
#endif

}  // namespace

int main(int argc, char** argv) {
  cc::reuse_freed_host_memory();  // as the CLI does: measure what users run
  CLI::App app{"INT8 GEMM vs float on LLaMA-2-7B / LLaMA-3-8B projection shapes (CPU: oneDNN; GPU: ours, cuBLASLt)"};
  std::vector<std::int64_t> ms{1, 16, 128, 512, 2048, 4096};
  int reps = 5, threads = 0;
  bool cpu_only = false;
  double peak = 0;
  app.add_option("--m", ms, "rows of the activation (tokens)")->delimiter(',')->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--reps", reps, "timed repetitions (median reported)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "CPU intra-op threads (0 = LibTorch default)")->capture_default_str();
  app.add_flag("--cpu-only", cpu_only, "skip the GPU table even where a device is present");
  app.add_option("--int8-peak-tops", peak, "the GPU's dense INT8 peak for the %-of-peak column (default: by device name)");
  CLI11_PARSE(app, argc, argv);
  try {
    if (threads > 0) at::set_num_threads(threads);
    c10::NoGradGuard no_grad;
    run_cpu(ms, reps);
#ifdef CC_HAVE_CUDA_KERNELS
    if (!cpu_only) {
      if (cuda::device_available())
        run_gpu(ms, reps, peak);
      else
        std::printf("\nGPU: no CUDA device here; the GPU table needs one\n");
    }
#else
    (void)cpu_only, (void)peak;
    std::printf("\nGPU: this build has no CUDA kernels (nvcc was not found at configure time)\n");
#endif
  } catch (const cc::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return cc::exit_code(e.kind());
  }
  return 0;
}
