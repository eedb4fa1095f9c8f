#include "cushioncache/kernels/affine_params.h"

#include <ATen/ATen.h>

namespace cushioncache::kernels {

std::pair<at::Tensor, at::Tensor> affine_params(const at::Tensor& min, const at::Tensor& max, bool symmetric, std::int64_t qmin,
                                                std::int64_t qmax) {
  const at::Tensor lo = min.to(at::kFloat).clamp_max(0.0), hi = max.to(at::kFloat).clamp_min(0.0);
  if (symmetric) {
    at::Tensor scale = at::maximum(lo.abs(), hi).div(static_cast<double>(qmax)).clamp_min_(kMinScale);
    at::Tensor zero_point = at::zeros_like(scale);
    return {scale, zero_point};
  }
  at::Tensor scale = (hi - lo).div(static_cast<double>(qmax - qmin)).clamp_min_(kMinScale);
  at::Tensor zero_point = at::round(-lo / scale).clamp_(static_cast<double>(qmin), static_cast<double>(qmax));
  return {scale, zero_point};
}

}  // namespace cushioncache::kernels
