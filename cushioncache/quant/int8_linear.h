// Real W8A8 execution of one linear layer: int8 weights with their scales, the input
// quantized to 8 bits (static: the calibrated per-tensor range; dynamic: each sequence's
// or each token's range), and the product on the INT8 kernels (kernels/int8_ops.h: one
// GEMM, int32 accumulation, the scales in its epilogue). Computes what fake quantization
// computes, up to float rounding; plugs into the model through the LinearKernel seam.
// Knows quantization specs, not backends: the kernels layer dispatches by device.
#pragma once

#include <optional>
#include <string>

#include <ATen/core/Tensor.h>

#include "cushioncache/kernels/int8_ops.h"
#include "cushioncache/model/linear.h"
#include "cushioncache/quant/fake_quant.h"
#include "cushioncache/quant/spec.h"

namespace cushioncache {

class Int8LinearKernel : public LinearKernel {
 public:
  // `weight` [out, in] must already be fake-quantized with `weight_spec` (8-bit symmetric,
  // per-tensor or per-channel), so that it is exactly int8 times its scale.
  // `static_input` is the calibrated input range's parameters; without it the range is
  // taken from each input (`input_spec`'s granularity: per tensor, i.e. per sequence, or
  // per token).
  Int8LinearKernel(const at::Tensor& weight, const at::Tensor& bias, const QuantSpec& weight_spec, const QuantSpec& input_spec,
                   std::optional<QuantParams> static_input);

  at::Tensor forward(const at::Tensor& x) const override;

  // Bytes held: the int8 weight, the scales, the row sums and the bias.
  std::int64_t bytes() const;
  // The int8 weight [out, in] the kernel multiplies with (shared, not copied).
  const at::Tensor& int8_weight() const { return weight_.values; }

 private:
  kernels::Int8Weight weight_;
  kernels::ActivationQuant input_;
};

// Why a recipe cannot run on the INT8 kernels (empty when it can): 8-bit symmetric
// per-tensor/per-channel weights, 8-bit activations per tensor (static or dynamic) or per
// token (dynamic), the built-in quantizer.
std::string int8_execution_blocker(const QuantSpec& weights, const QuantSpec& activations, const std::string& quantizer_kind);

}  // namespace cushioncache
