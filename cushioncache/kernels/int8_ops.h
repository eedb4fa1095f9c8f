// The W8A8 linear op on LibTorch tensors, dispatched by device: the input quantized to 8
// bits (a calibrated scale, or dynamic ranges per sequence or per token), one INT8 GEMM
// with the activation scales in its epilogue (a scalar or a vector, one per sequence or
// token), int32 accumulation, dequantized output. The grouping of rows and the dynamic
// parameters are prepared here, once, for every backend; a backend runs the arithmetic.
//
// The CPU backend (oneDNN, kernels/int8_gemm.h) is built in. The CUDA backend lives in
// the cushioncache_cuda library (kernels/cuda/), which registers itself when it is loaded:
// a program that links cushioncache::cuda (find_package(CushionCache COMPONENTS cuda))
// runs CUDA tensors, with nothing to call.
#pragma once

#include <cstdint>
#include <utility>

#include <ATen/core/Tensor.h>

namespace cushioncache::kernels {

// How the activations' ranges are found.
enum class ActivationRange {
  kStatic,              // the calibrated scale and zero-point of ActivationQuant
  kDynamicPerSequence,  // the range of each sequence of a [B, T, in] input (of all rows for 2-D input)
  kDynamicPerToken,     // the range of each row
};

struct ActivationQuant {
  ActivationRange range = ActivationRange::kStatic;
  bool symmetric = true;  // int8 with zero-point 0, else uint8 with one
  std::int64_t qmin = -128, qmax = 127;
  at::Tensor scale, zero_point;  // kStatic only: one float32 element each (on the weight's device)
};

// A quantized weight as the backends take it (make_int8_weight builds one).
struct Int8Weight {
  at::Tensor values;    // [out, in] int8
  at::Tensor scales;    // [out] (per channel) or [1] float32
  at::Tensor row_sums;  // [out] int32 = sum_k values[n, k]: the zero-point correction
  at::Tensor bias;      // [out] float32, or undefined
};

// From int8 values, their scales and an optional bias, on the values' device.
Int8Weight make_int8_weight(const at::Tensor& values, const at::Tensor& scales, const at::Tensor& bias);

// y = dequant(quant(x) x weight^T) (+ bias). x [..., in] float32 (float16 and bfloat16 too
// on CUDA); y has x's shape with `out` features and x's dtype. kMismatch for a wrong
// feature count or device, kUnsupported for a device without a backend.
at::Tensor int8_linear(const at::Tensor& x, const Int8Weight& weight, const ActivationQuant& input);

// The problem a backend receives: x flattened to [M, in] (contiguous), M > 0, and how its
// rows share activation parameters: rows_per_scale 0 for the static pair, else one pair per
// group of rows_per_scale rows (a sequence, or a token when 1), computed by the backend
// (dynamic_activation_params, or on the device: CUDA computes them without a host
// synchronisation).
struct Int8LinearProblem {
  at::Tensor x;  // [M, in]
  std::int64_t rows_per_scale = 0;
  const ActivationQuant* input = nullptr;
  const Int8Weight* weight = nullptr;
};

// The dynamic scales and zero-points of a problem, one per group of rows (float32 [groups]),
// with affine_params: what fake quantization computes for the same rows.
std::pair<at::Tensor, at::Tensor> dynamic_activation_params(const Int8LinearProblem& problem);
using Int8LinearBackend = at::Tensor (*)(const Int8LinearProblem& problem);  // returns y [M, out]

// Installs the backend for a device type (the CUDA library's static initializer calls it);
// a later registration replaces an earlier one. Thread-safe.
void register_int8_linear_backend(c10::DeviceType device, Int8LinearBackend backend);
bool has_int8_linear_backend(c10::DeviceType device);

}  // namespace cushioncache::kernels
