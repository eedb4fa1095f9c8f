// The per-element arithmetic of the CUDA quantization kernels, written once for the
// device and the host: the kernels call it, and the host test suite runs it against
// LibTorch's CPU results (fake quantization, quant/fake_quant.h, and the CPU INT8 path,
// quant/int8_linear.cpp), so "CUDA quantizes as the CPU does" is checked without a GPU.
// Every step is the CPU's float32 operation in the CPU's order: IEEE division (never a
// reciprocal), round half to even, the zero-point added in float, then the clamp.
#pragma once

#include <cmath>

#include "cushioncache/kernels/cuda/host_device.h"

namespace cushioncache::kernels::cuda {

// params_for_range's floor under a scale (quant/fake_quant.cpp's kMinScale, which
// LibTorch rounds to float32 for a float32 tensor).
inline constexpr float kMinScale = 1e-10f;

// a / b rounded to nearest: __fdiv_rn keeps it IEEE on the device even under fast math.
CC_HOST_DEVICE inline float divide_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// at::round: half to even (the default rounding mode on the host; rint on the device).
CC_HOST_DEVICE inline float round_half_even(float v) {
#if defined(__CUDA_ARCH__)
  return rintf(v);
#else
  return std::nearbyint(v);
#endif
}

// at::clamp: NaN stays NaN (comparisons with NaN are false), unlike fminf/fmaxf, which
// would turn a NaN into one of the bounds.
CC_HOST_DEVICE inline float clamp_keep_nan(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

// One element: clamp(round_half_even(x / scale) + zero_point, qmin, qmax) in float, then
// the integer. The clamp comes before any integer conversion, so huge or infinite inputs
// saturate at the right end (an int addition after the rounding would overflow).
// NaN gives 0: what LibTorch's float -> int8/uint8 conversion gives on the CPU (x86's
// truncating conversion writes 0x80000000, whose low byte is 0), so both paths agree.
CC_HOST_DEVICE inline int quantize_element(float x, float scale, float zero_point, float qmin, float qmax) {
  const float q = clamp_keep_nan(round_half_even(divide_rn(x, scale)) + zero_point, qmin, qmax);
  return q != q ? 0 : static_cast<int>(q);
}

// Symmetric: max(absmax / qmax, kMinScale), as params_for_range (absmax is NaN-free: the
// caller turns a NaN count into a NaN scale).
CC_HOST_DEVICE inline float symmetric_scale(float absmax, float qmax) {
  const float scale = divide_rn(absmax, qmax);
  return scale < kMinScale ? kMinScale : scale;
}

// Asymmetric, params_for_range step by step for one (min, max): the range widened to
// include 0, scale = (hi - lo) / (qmax - qmin) floored at kMinScale, zero_point =
// clamp(round(-lo / scale), qmin, qmax). NaN propagates as in LibTorch.
struct AffineParams {
  float scale, zero_point;
};
CC_HOST_DEVICE inline AffineParams asymmetric_params(float min, float max, float qmin, float qmax) {
  const float lo = min > 0.0f ? 0.0f : min, hi = max < 0.0f ? 0.0f : max;  // clamp_max(0) / clamp_min(0), NaN kept
  float scale = divide_rn(hi - lo, qmax - qmin);
  scale = scale < kMinScale ? kMinScale : scale;
  return {scale, clamp_keep_nan(round_half_even(divide_rn(-lo, scale)), qmin, qmax)};
}

}  // namespace cushioncache::kernels::cuda
