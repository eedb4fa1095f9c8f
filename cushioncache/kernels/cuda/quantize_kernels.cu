#include "cushioncache/kernels/cuda/quantize_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "cushioncache/kernels/cuda/cuda_check.h"
#include "cushioncache/kernels/cuda/quantize_math.h"

namespace cushioncache::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// One element into the running maximum; NaN is counted, never compared.
__device__ __forceinline__ void accumulate(float v, float& best, unsigned& nans) {
  if (isnan(v)) ++nans;
  else best = fmaxf(best, fabsf(v));
}

// Warp shuffles, then one value per warp through shared memory: thread 0 of the block
// gets the block's maximum and NaN count.
__device__ __forceinline__ void block_reduce(float& best, unsigned& nans) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    best = fmaxf(best, __shfl_xor_sync(0xffffffffu, best, offset));
    nans += __shfl_xor_sync(0xffffffffu, nans, offset);
  }
  __shared__ float warp_best[kThreads / 32];
  __shared__ unsigned warp_nans[kThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    warp_best[warp] = best;
    warp_nans[warp] = nans;
  }
  __syncthreads();
  if (warp == 0) {
    best = lane < blockDim.x / 32 ? warp_best[lane] : 0.0f;
    nans = lane < blockDim.x / 32 ? warp_nans[lane] : 0u;
    for (int offset = 16; offset > 0; offset >>= 1) {
      best = fmaxf(best, __shfl_xor_sync(0xffffffffu, best, offset));
      nans += __shfl_xor_sync(0xffffffffu, nans, offset);
    }
  }
}

// Grid-stride over 16-byte vectors (4 floats or 8 halves), the tail element by element.
template <typename T>
__global__ void absmax_kernel(const T* __restrict__ x, std::int64_t n, bool vectorized, float* absmax, unsigned* nan_count) {
  float best = 0.0f;
  unsigned nans = 0;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  std::int64_t tail = 0;
  if (vectorized) {
    constexpr int kPerVector = 16 / sizeof(T);
    const std::int64_t vectors = n / kPerVector;
    const uint4* v = reinterpret_cast<const uint4*>(x);
    for (std::int64_t i = first; i < vectors; i += stride) {
      const uint4 packed = v[i];
      const T* e = reinterpret_cast<const T*>(&packed);
#pragma unroll
      for (int j = 0; j < kPerVector; ++j) accumulate(to_float(e[j]), best, nans);
    }
    tail = vectors * kPerVector;
  }
  for (std::int64_t i = tail + first; i < n; i += stride) accumulate(to_float(x[i]), best, nans);
  block_reduce(best, nans);
  if (threadIdx.x == 0) {
    // Non-negative floats order as their bit patterns do, so an unsigned max is a float max.
    atomicMax(reinterpret_cast<unsigned*>(absmax), __float_as_uint(best));
    if (nans > 0) atomicAdd(nan_count, nans);
  }
}

template <typename T>
__global__ void absmax_per_row_kernel(const T* __restrict__ x, std::int64_t cols, float* absmax, unsigned* nan_count) {
  const T* row = x + static_cast<std::int64_t>(blockIdx.x) * cols;
  float best = 0.0f;
  unsigned nans = 0;
  for (std::int64_t i = threadIdx.x; i < cols; i += blockDim.x) accumulate(to_float(row[i]), best, nans);
  block_reduce(best, nans);
  if (threadIdx.x == 0) {
    absmax[blockIdx.x] = best;
    if (nans > 0) atomicAdd(nan_count, nans);
  }
}

template <typename T, typename Q>
__global__ void quantize_kernel(const T* __restrict__ x, std::int64_t n, std::int64_t group, const float* scale, const float* zero_point,
                                float qmin, float qmax, Q* __restrict__ out) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  // quantize_element clamps in float before converting, as the CPU does: an integer
  // addition of the zero-point after the rounding overflowed for huge or infinite x.
  if (group >= n) {  // one pair, read once
    const float s = *scale, z = *zero_point;
    for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
      out[i] = static_cast<Q>(quantize_element(to_float(x[i]), s, z, qmin, qmax));
    return;
  }
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const std::int64_t g = i / group;
    out[i] = static_cast<Q>(quantize_element(to_float(x[i]), scale[g], zero_point[g], qmin, qmax));
  }
}

int grid_for(std::int64_t work) {
  const std::int64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 1 ? 1 : (blocks > 4096 ? 4096 : blocks));
}

template <typename Launch>
void dispatch(FloatType type, Launch&& launch) {
  switch (type) {
    case FloatType::kFloat32: launch(static_cast<const float*>(nullptr)); return;
    case FloatType::kFloat16: launch(static_cast<const __half*>(nullptr)); return;
    case FloatType::kBFloat16: launch(static_cast<const __nv_bfloat16*>(nullptr)); return;
  }
}

}  // namespace

bool device_available() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

void absmax(const void* x, FloatType type, std::int64_t n, float* absmax, unsigned* nan_count, Stream stream) {
  if (n < 0) fail_invalid_argument("absmax: n is negative");
  if (x == nullptr || absmax == nullptr || nan_count == nullptr) fail_invalid_argument("absmax: a pointer is null");
  check_cuda(cudaMemsetAsync(absmax, 0, sizeof(float), stream), "absmax: zeroing the result");
  check_cuda(cudaMemsetAsync(nan_count, 0, sizeof(unsigned), stream), "absmax: zeroing the NaN count");
  if (n == 0) return;
  const bool vectorized = reinterpret_cast<std::uintptr_t>(x) % 16 == 0;
  dispatch(type, [&](auto tag) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    absmax_kernel<T><<<grid_for(n / (vectorized ? 16 / sizeof(T) : 1)), kThreads, 0, stream>>>(static_cast<const T*>(x), n, vectorized,
                                                                                               absmax, nan_count);
  });
  check_cuda(cudaGetLastError(), "absmax: launch");
}

void absmax_per_row(const void* x, FloatType type, std::int64_t rows, std::int64_t cols, float* absmax, unsigned* nan_count,
                    Stream stream) {
  if (rows < 0 || cols < 0) fail_invalid_argument("absmax_per_row: a size is negative");
  if (rows > 2147483647) fail_invalid_argument("absmax_per_row: more than 2^31 - 1 rows");
  if (x == nullptr || absmax == nullptr || nan_count == nullptr) fail_invalid_argument("absmax_per_row: a pointer is null");
  check_cuda(cudaMemsetAsync(nan_count, 0, sizeof(unsigned), stream), "absmax_per_row: zeroing the NaN count");
  if (rows == 0) return;
  dispatch(type, [&](auto tag) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    absmax_per_row_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(static_cast<const T*>(x), cols, absmax, nan_count);
  });
  check_cuda(cudaGetLastError(), "absmax_per_row: launch");
}

void quantize_per_tensor(const void* x, FloatType type, std::int64_t n, const float* scale, const float* zero_point, int qmin,
                         int qmax, void* out, bool out_unsigned, Stream stream) {
  quantize_per_group(x, type, n, n, scale, zero_point, qmin, qmax, out, out_unsigned, stream);
}

void quantize_per_group(const void* x, FloatType type, std::int64_t n, std::int64_t group, const float* scale, const float* zero_point,
                        int qmin, int qmax, void* out, bool out_unsigned, Stream stream) {
  if (n < 0) fail_invalid_argument("quantize: n is negative");
  if (x == nullptr || scale == nullptr || zero_point == nullptr || out == nullptr) fail_invalid_argument("quantize: a pointer is null");
  if (qmin > qmax || (out_unsigned && (qmin < 0 || qmax > 255)) || (!out_unsigned && (qmin < -128 || qmax > 127)))
    fail_invalid_argument("quantize: [qmin, qmax] does not fit the output type");
  if (n == 0) return;
  if (group < 1) fail_invalid_argument("quantize: the group size must be positive");
  dispatch(type, [&](auto tag) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    if (out_unsigned)
      quantize_kernel<T, std::uint8_t><<<grid_for(n), kThreads, 0, stream>>>(static_cast<const T*>(x), n, group, scale, zero_point,
                                                                             static_cast<float>(qmin), static_cast<float>(qmax),
                                                                             static_cast<std::uint8_t*>(out));
    else
      quantize_kernel<T, std::int8_t><<<grid_for(n), kThreads, 0, stream>>>(static_cast<const T*>(x), n, group, scale, zero_point,
                                                                            static_cast<float>(qmin), static_cast<float>(qmax),
                                                                            static_cast<std::int8_t*>(out));
  });
  check_cuda(cudaGetLastError(), "quantize: launch");
}

}  // namespace cushioncache::kernels::cuda
