// INT8 GEMM with a dequantizing epilogue, the arithmetic of a W8A8 linear layer:
//
//   y[m, n] = scale_a[g] * scale_w[n] * sum_k (a[m, k] - zero_a[g]) * w[n, k]  (+ bias[n])
//
// with int32 accumulation. Activations are int8 (symmetric, zero_a = 0) or uint8 with a
// zero-point (asymmetric), with one scale and zero-point for the whole matrix (g = 0) or
// one per group of rows (g = m / a_rows_per_scale: a sequence, or a token when 1, as
// vLLM's scaled_mm takes a scalar or a vector); weights int8, symmetric, with one scale
// per tensor or per output channel. Framework-free (raw pointers, no LibTorch) so the same contract holds
// for every backend; the CPU backend is oneDNN's matmul (AVX-512 VNNI where the CPU has
// it). Layouts are row-major and contiguous: a [M, K], w [N, K] (nn.Linear's), y [M, N].
#pragma once

#include <cstdint>

namespace cushioncache::kernels {

struct Int8Gemm {
  std::int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;       // [m, k] int8, or uint8 when a_unsigned
  bool a_unsigned = false;
  std::int32_t a_zero_point = 0;  // only with a_unsigned (0..255)
  float a_scale = 1.0f;
  // Vector activation scales: with a_rows_per_scale > 0, rows [g * r, (g + 1) * r) use
  // a_scales[g] and a_zero_points[g] (the latter only with a_unsigned) instead of the
  // scalars above; the epilogue subtracts zero_a[g] * w_row_sums[n] in int32.
  std::int64_t a_rows_per_scale = 0;
  const float* a_scales = nullptr;              // [ceil(m / a_rows_per_scale)]
  const std::int32_t* a_zero_points = nullptr;  // same count, 0..255
  const std::int32_t* w_row_sums = nullptr;     // [n] = sum_k w[n, k]; needed with vector zero-points
  const std::int8_t* w = nullptr;  // [n, k]
  const float* w_scales = nullptr;  // [n] when w_per_channel, else [1]
  bool w_per_channel = false;
  const float* bias = nullptr;      // [n] or nullptr
  float* y = nullptr;               // [m, n]
};

// Whether this build has a CPU INT8 GEMM (oneDNN was found at configure time).
bool cpu_int8_gemm_available();

// Runs on the calling thread's CPU backend; kUnsupported without oneDNN, kInvalidArgument
// naming the field on a bad problem (non-positive sizes, null pointers, a zero-point
// outside 0..255 or given for int8 activations, non-finite scales). Vector scales run as
// one int32 GEMM and our epilogue (oneDNN 2.x scales the source per tensor only).
void int8_gemm_cpu(const Int8Gemm& problem);

}  // namespace cushioncache::kernels
