// CUDA INT8 GEMM with a dequantizing epilogue, the arithmetic of a W8A8 linear layer on
// the GPU (the CPU twin is kernels/int8_gemm.h):
//
//   y[m, n] = scale_a[g] * scale_w[n] * (sum_k a[m, k] * w[n, k] - zero_a[g] * sum_k w[n, k])  (+ bias[n])
//
// with g = 0 (one activation scale and zero-point) or g = m / a_rows_per_scale (one per
// sequence or token: vector scales, as vLLM's scaled_mm takes them).
//
// int8 x int8 (or uint8 x int8 for asymmetric activations) with int32 accumulation on
// tensor cores. Two backends behind one problem description:
//   - kTensorCore: our kernel, mma.sync.m16n8k32 (sm_80 and newer), cp.async multistage
//     pipeline, the epilogue fused; symmetric and asymmetric activations.
//   - kCublasLt: cuBLASLt's int8 TN GEMM into an int32 buffer, then our epilogue kernel;
//     symmetric activations only (cuBLASLt has no uint8 x int8).
// The activation scale and zero-point are read from device memory, so a scale computed on
// the GPU (absmax, then scale_from_absmax) feeds the GEMM with no host synchronisation.
// Framework-free: raw device pointers and a stream, no LibTorch.
//
// Status: compiled in CI for sm_80 and sm_90a; not yet run on a GPU (none was lent to
// the sessions that wrote them); docs/kernels.md keeps the GPU rows empty until one is.
#pragma once

#include <cstdint>
#include <memory>

#include "cushioncache/kernels/cuda/quantize_kernels.h"

namespace cushioncache::kernels::cuda {

struct GemmS8S8 {
  std::int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;               // [m, k] int8, or uint8 when a_unsigned; device, 16-byte aligned
  bool a_unsigned = false;
  const float* a_scale = nullptr;        // device scalar, or [m / a_rows_per_scale] with vector scales
  const float* a_zero_point = nullptr;   // likewise (whole numbers in 0..255); only with a_unsigned
  std::int64_t a_rows_per_scale = 0;     // 0: one scale for every row; r > 0: rows [g * r, (g + 1) * r) use element g
  const std::int8_t* w = nullptr;        // [n, k] (nn.Linear's layout); device, 16-byte aligned
  const float* w_scales = nullptr;       // device, [n] when w_per_channel, else [1]
  bool w_per_channel = false;
  const std::int32_t* w_row_sums = nullptr;  // device [n] = sum_k w[n, k]; needed with a_unsigned (weight_row_sums)
  const float* bias = nullptr;           // device [n] float32, or nullptr
  void* y = nullptr;                     // [m, n] of y_type; device
  FloatType y_type = FloatType::kFloat32;
};

enum class GemmBackend { kAuto, kTensorCore, kCublasLt };

// The largest K whose int32 sums are exact whatever the values: |a * w| <= 255 * 128 for
// uint8 activations, 128 * 128 for int8 ones, and (2^31 - 1) / that, rounded down.
// Larger K is refused before anything runs (the sums, the row sums and the zero-point
// correction are all int32).
inline constexpr std::int64_t kGemmMaxKUnsigned = 65793, kGemmMaxKSigned = 131071;

// sums[r] = sum_k w[r, k] for an int8 [n, k] matrix: the asymmetric-activation correction,
// computed once per weight.
void weight_row_sums(const std::int8_t* w, std::int64_t n, std::int64_t k, std::int32_t* sums, Stream stream);

// scale[i] = max(absmax[i] / qmax, 1e-10) for `count` values on the device
// (params_for_range's floor), so a dynamic (absmax) scale never leaves the GPU and a zero
// tensor gets a tiny positive scale instead of a division by zero.
// With `nan_count` (absmax's count; may be null) above zero every scale is NaN, so the NaN
// reaches the output instead of vanishing in the abs-max.
void scale_from_absmax(const float* absmax, const unsigned* nan_count, int qmax, float* scale, Stream stream, std::int64_t count = 1);

// params_for_range's asymmetric scale and zero-point (kernels/affine_params.h) from device
// mins and maxes (`count` floats each), on the device: no host synchronisation, and the division
// exact as on the CPU (ATen's CUDA division by a host scalar multiplies by its reciprocal,
// one ulp off, which moved some inputs to the neighbouring integer). NaN propagates.
void asymmetric_params_from_range(const float* min, const float* max, int qmin, int qmax, float* scale, float* zero_point, Stream stream,
                                  std::int64_t count = 1);

// Why `problem` cannot run on `backend` (nullptr when it can): K above the int32 bound,
// alignment, K a multiple of 16 (of 4 for cuBLASLt), null pointers, missing row sums,
// asymmetric on cuBLASLt.
const char* gemm_unsupported_reason(const GemmS8S8& problem, GemmBackend backend);

// Runs the GEMM; kInvalidArgument naming the precondition when it cannot. Owns the
// cuBLASLt handle, its workspace and the int32 buffer of the cuBLASLt path, which live on
// the device current at its first cuBLASLt call (another device later is refused): keep
// one per (device, stream) and reuse it, as shared_runner does. Thread-safe. A call on
// another stream than the previous one waits for the previous stream's work on those
// buffers, so mixing streams is correct, only serialised. Destroy a runner before the
// streams it ran on (its destructor frees in stream order on the last one).
class Int8GemmRunner {
 public:
  Int8GemmRunner();
  ~Int8GemmRunner();
  Int8GemmRunner(const Int8GemmRunner&) = delete;
  Int8GemmRunner& operator=(const Int8GemmRunner&) = delete;

  // kAuto: cuBLASLt for few rows (m <= 64, where one 128-row tile of ours wastes most of
  // its work) when it supports the problem, our kernel otherwise.
  void run(const GemmS8S8& problem, GemmBackend backend, Stream stream);
  // The backend kAuto would pick.
  GemmBackend pick(const GemmS8S8& problem) const;

  // The float baseline the benchmark compares against: y[m, n] = sum_k a[m, k] * w[n, k]
  // in bfloat16 with float32 accumulation (cuBLASLt, the engine under cuBLAS's GEMMs).
  void bf16_gemm(std::int64_t m, std::int64_t n, std::int64_t k, const void* a, const void* w, void* y, Stream stream);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The process-wide runner for (device, stream): made on first use, kept until the process
// ends. The LibTorch ops layer (int8_ops.h) runs every GEMM through it. Thread-safe.
Int8GemmRunner& shared_runner(int device, Stream stream);

}  // namespace cushioncache::kernels::cuda
