// How close does the per-tensor abs-max (the dynamic activation scale) come to memory
// bandwidth? float32 tensors of 1 MB .. 1 GB, against a copy of the same tensor measured
// in the same run. Bandwidth counts bytes moved: the abs-max reads the tensor once, the
// copy reads and writes it.
//   CPU: at::aminmax (what Int8LinearKernel's dynamic path runs) vs a tensor copy;
//   GPU, when this build has the CUDA kernels and a device is present: our absmax kernel
//   vs cudaMemcpyAsync device to device.
//
//   bench_absmax [--max-mb 1024] [--reps 10] [--threads 0] [--cpu-only]
#include <cstdio>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include "cushioncache/core/allocator.h"
#include "cushioncache/core/error.h"
#include "bench_common.h"

#ifdef CC_HAVE_CUDA_KERNELS
#include "bench_cuda.h"
#include "cushioncache/kernels/cuda/quantize_kernels.h"
#endif

namespace cc = cushioncache;

namespace {

std::vector<std::int64_t> sizes_mb(std::int64_t max_mb) {
  std::vector<std::int64_t> sizes;
  for (std::int64_t mb = 1; mb <= max_mb; mb *= 4) sizes.push_back(mb);
  return sizes;
}

void run_cpu(std::int64_t max_mb, int reps) {
  const c10::Device cpu(c10::kCPU);
  std::printf("CPU: %d intra-op threads; at::aminmax vs tensor copy\n\n", at::get_num_threads());
  std::printf("%10s %14s %14s %10s\n", "MB", "absmax GB/s", "copy GB/s", "ratio");
  for (std::int64_t mb : sizes_mb(max_mb)) {
    const std::int64_t n = mb * (1 << 20) / 4;
    const at::Tensor x = at::randn({n});
    at::Tensor copy = at::empty_like(x);
    const double bytes = static_cast<double>(n) * 4;
    const double t_absmax = cc::bench::median_seconds(reps, cpu, [&] { (void)at::aminmax(x); });
    const double t_copy = cc::bench::median_seconds(reps, cpu, [&] { copy.copy_(x); });
    const double absmax_gbs = bytes / t_absmax / 1e9, copy_gbs = 2 * bytes / t_copy / 1e9;
    std::printf("%10lld %14.1f %14.1f %9.0f%%\n", static_cast<long long>(mb), absmax_gbs, copy_gbs, 100 * absmax_gbs / copy_gbs);
    std::fflush(stdout);
  }
}

#ifdef CC_HAVE_CUDA_KERNELS
namespace cuda = cc::kernels::cuda;
using cc::bench::check_cuda_call;
using cc::bench::DeviceMemory;
using cc::bench::median_gpu_seconds;

void run_gpu(std::int64_t max_mb, int reps) {
  cudaDeviceProp prop{};
  check_cuda_call(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  std::printf("\nGPU: %s; our absmax kernel (float32) vs cudaMemcpyAsync device to device\n\n", prop.name);
  std::printf("%10s %14s %14s %10s\n", "MB", "absmax GB/s", "copy GB/s", "ratio");
  const std::size_t max_bytes = static_cast<std::size_t>(max_mb) << 20;
  DeviceMemory x(max_bytes), copy(max_bytes), result(16);
  check_cuda_call(cudaMemset(x.ptr, 0x3c, max_bytes), "cudaMemset");  // finite floats (0x3c3c3c3c ~ 0.0115)
  float* absmax = static_cast<float*>(result.ptr);
  unsigned* nans = reinterpret_cast<unsigned*>(static_cast<char*>(result.ptr) + 8);
  for (std::int64_t mb : sizes_mb(max_mb)) {
    const std::size_t bytes = static_cast<std::size_t>(mb) << 20;
    const std::int64_t n = static_cast<std::int64_t>(bytes / 4);
    const double t_absmax = median_gpu_seconds(reps, [&] { cuda::absmax(x.ptr, cuda::FloatType::kFloat32, n, absmax, nans, nullptr); });
    const double t_copy = median_gpu_seconds(reps, [&] { check_cuda_call(cudaMemcpyAsync(copy.ptr, x.ptr, bytes, cudaMemcpyDeviceToDevice, nullptr), "copy"); });
    const double absmax_gbs = static_cast<double>(bytes) / t_absmax / 1e9, copy_gbs = 2.0 * static_cast<double>(bytes) / t_copy / 1e9;
    std::printf("%10lld %14.1f %14.1f %9.0f%%\n", static_cast<long long>(mb), absmax_gbs, copy_gbs, 100 * absmax_gbs / copy_gbs);
    std::fflush(stdout);
  }
}
#endif

}  // namespace

int main(int argc, char** argv) {
  cc::reuse_freed_host_memory();
  CLI::App app{"abs-max (dynamic activation scale) bandwidth vs a copy, CPU and GPU"};
  std::int64_t max_mb = 1024;
  int reps = 10, threads = 0;
  bool cpu_only = false;
  app.add_option("--max-mb", max_mb, "largest tensor in MB (sizes go 1, 4, 16, ... up to it)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--reps", reps, "timed repetitions (median reported)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "CPU intra-op threads (0 = LibTorch default)")->capture_default_str();
  app.add_flag("--cpu-only", cpu_only, "skip the GPU table even where a device is present");
  CLI11_PARSE(app, argc, argv);
  try {
    if (threads > 0) at::set_num_threads(threads);
    run_cpu(max_mb, reps);
#ifdef CC_HAVE_CUDA_KERNELS
    if (!cpu_only) {
      if (cuda::device_available())
        run_gpu(max_mb, reps);
      else
        std::printf("\nGPU: no CUDA device here; the GPU table needs one\n");
    }
#else
    (void)cpu_only;
    std::printf("\nGPU: this build has no CUDA kernels (nvcc was not found at configure time)\n");
#endif
  } catch (const cc::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return cc::exit_code(e.kind());
  }
  return 0;
}
