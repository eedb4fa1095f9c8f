// GPU timing for the benchmarks built with the CUDA kernels (CC_HAVE_CUDA_KERNELS): CUDA
// events on the default stream, so only device time is counted.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "cushioncache/core/error.h"

namespace cushioncache::bench {

inline void check_cuda_call(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw_error(ErrorKind::kInternal, "{}: {}", what, cudaGetErrorString(e));
}

struct DeviceMemory {
  void* ptr = nullptr;
  explicit DeviceMemory(std::size_t bytes) { check_cuda_call(cudaMalloc(&ptr, bytes), "cudaMalloc"); }
  ~DeviceMemory() { cudaFree(ptr); }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
};

// Median of `reps` runs after one warm-up, each timed by a pair of events.
template <typename F>
double median_gpu_seconds(int reps, F&& fn) {
  cudaEvent_t start, stop;
  check_cuda_call(cudaEventCreate(&start), "cudaEventCreate");
  check_cuda_call(cudaEventCreate(&stop), "cudaEventCreate");
  fn();
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    check_cuda_call(cudaEventRecord(start, nullptr), "cudaEventRecord");
    fn();
    check_cuda_call(cudaEventRecord(stop, nullptr), "cudaEventRecord");
    check_cuda_call(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    check_cuda_call(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    times.push_back(ms / 1e3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace cushioncache::bench
