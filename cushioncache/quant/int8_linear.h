// Real W8A8 execution of one linear layer: int8 weights with their scales, the input
// quantized to 8 bits with a per-tensor scale (static: calibrated; dynamic: from this
// input's range), and the product on the INT8 GEMM (kernels/int8_gemm.h), int32
// accumulation, dequantized in the epilogue. Computes what fake quantization computes, up
// to float rounding; plugs into the model through the LinearKernel seam.
#pragma once

#include <optional>

#include <ATen/core/Tensor.h>

#include "cushioncache/model/linear.h"
#include "cushioncache/quant/fake_quant.h"
#include "cushioncache/quant/spec.h"

namespace cushioncache {

class Int8LinearKernel : public LinearKernel {
 public:
  // `weight` [out, in] must already be fake-quantized with `weight_spec` (8-bit symmetric,
  // per-tensor or per-channel), so that it is exactly int8 times its scale.
  // `static_input` is the calibrated input range's parameters; without it the range is
  // taken from each input (dynamic per-tensor).
  Int8LinearKernel(const at::Tensor& weight, const at::Tensor& bias, const QuantSpec& weight_spec, const QuantSpec& input_spec,
                   std::optional<QuantParams> static_input);

  at::Tensor forward(const at::Tensor& x) const override;

  // Bytes held: the int8 weight, the scales and the bias.
  std::int64_t bytes() const;
  // The int8 weight [out, in] the kernel multiplies with (shared, not copied).
  const at::Tensor& int8_weight() const { return weight_; }

 private:
  at::Tensor weight_;    // [out, in] int8 (CPU)
  at::Tensor w_scales_;  // [out] or [1] float32
  at::Tensor bias_;      // [out] float32 or undefined
  QuantSpec input_spec_;
  std::optional<QuantParams> static_input_;  // scale and zero-point tensors of one element
};

// Why a recipe cannot run on the INT8 kernels (empty when it can): 8-bit symmetric
// per-tensor/per-channel weights and 8-bit per-tensor activations, built-in quantizer.
std::string int8_execution_blocker(const QuantSpec& weights, const QuantSpec& activations, const std::string& quantizer_kind);

}  // namespace cushioncache
