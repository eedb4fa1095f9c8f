// The scale and zero-point that cover a range [min, max] with the integers [qmin, qmax]:
// the one arithmetic behind fake quantization (quant/fake_quant.h) and the INT8 kernels'
// dynamic ranges (kernels/int8_ops.h), here at the bottom so both use the same code and
// agree to the bit. The CUDA kernels repeat it per element in quantize_math.h, which the
// tests check against this.
#pragma once

#include <cstdint>
#include <utility>

#include <ATen/core/Tensor.h>

namespace cushioncache::kernels {

// Keeps 1 / scale finite for a range that collapsed to a point.
inline constexpr double kMinScale = 1e-10;

// Tensors of any (equal) shape, widened to include 0 so that zero is exact. Symmetric:
// scale = max(|min|, |max|) / qmax, zero-point 0. Asymmetric: scale = (max - min) /
// (qmax - qmin), zero-point = clamp(round(-min / scale), qmin, qmax). float32 results,
// the zero-point holding integers.
std::pair<at::Tensor, at::Tensor> affine_params(const at::Tensor& min, const at::Tensor& max, bool symmetric, std::int64_t qmin,
                                                std::int64_t qmax);

}  // namespace cushioncache::kernels
