// Uniform affine fake quantization: q = clamp(round_half_even(x / scale) + zero_point,
// qmin, qmax), x_hat = (q - zero_point) * scale, computed in float32. As an autograd
// function its backward is the straight-through estimator: the gradient passes where the
// rounded value lies inside [qmin, qmax] and is zero where it was clamped; scale and
// zero-point are constants.
#pragma once

#include <cstdint>
#include <utility>

#include <ATen/core/Tensor.h>

#include "cushioncache/quant/spec.h"

namespace cushioncache {

struct QuantParams {
  at::Tensor scale;       // float32, broadcastable to the quantized tensor
  at::Tensor zero_point;  // float32 holding integers, same shape as scale
  std::int64_t qmin = 0;
  std::int64_t qmax = 0;
};

// [-2^(b-1), 2^(b-1) - 1] when symmetric, [0, 2^b - 1] otherwise.
std::pair<std::int64_t, std::int64_t> integer_range(const QuantSpec& spec);

// Parameters covering [min, max] (tensors of any shape), widened to include 0 so that
// zero is exact. Symmetric: scale = max(|min|, |max|) / qmax, zero-point 0. Asymmetric:
// scale = (max - min) / (2^b - 1), zero-point = round(-min / scale). A zero range gets a
// tiny positive scale instead of a division by zero.
QuantParams params_for_range(const at::Tensor& min, const at::Tensor& max, const QuantSpec& spec);

// The fake-quantization autograd op (output in x's dtype).
at::Tensor fake_quantize(const at::Tensor& x, const QuantParams& params);

}  // namespace cushioncache
