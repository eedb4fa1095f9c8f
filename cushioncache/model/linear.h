// A linear layer as the model holds it: nn.Linear's [out, in] weight and optional bias,
// plus an optional kernel that replaces the float matmul (real INT8 execution plugs in
// here without the model knowing about quantization).
#pragma once

#include <memory>

#include <ATen/core/Tensor.h>

namespace cushioncache {

class LinearKernel {
 public:
  virtual ~LinearKernel() = default;
  // x [..., in] -> [..., out], in x's dtype.
  virtual at::Tensor forward(const at::Tensor& x) const = 0;
};

struct Linear {
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out] or undefined
  std::shared_ptr<const LinearKernel> kernel;

  at::Tensor operator()(const at::Tensor& x) const;
};

}  // namespace cushioncache
