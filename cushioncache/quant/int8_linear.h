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

// The GPU half of Int8LinearKernel. The CUDA kernels live in cushioncache_cuda_kernels,
// a library built on top of this one, so they are handed in at run time:
// kernels/cuda/int8_ops.h's register_cuda_int8_ops() (the CLI calls it). Until then a
// CUDA weight is kUnsupported.
struct CudaInt8Ops {
  // y = dequant(quant(x) x weight^T) (+ bias) for CUDA tensors: x [..., in] float32,
  // float16 or bfloat16; weight [out, in] int8; w_scales [out] or [1]; w_row_sums [out]
  // int32; bias [out] float32 or undefined; `input` the static activation parameters
  // (on the device) or nullopt for dynamic per-tensor ranges, one per sequence as on the
  // CPU. y has x's dtype.
  at::Tensor (*linear)(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& w_scales, const at::Tensor& w_row_sums,
                       const at::Tensor& bias, const QuantSpec& input_spec, const std::optional<QuantParams>& input) = nullptr;
};
void set_cuda_int8_ops(const CudaInt8Ops* ops);

class Int8LinearKernel : public LinearKernel {
 public:
  // `weight` [out, in] must already be fake-quantized with `weight_spec` (8-bit symmetric,
  // per-tensor or per-channel), so that it is exactly int8 times its scale.
  // `static_input` is the calibrated input range's parameters; without it the range is
  // taken from each input (dynamic per-tensor).
  Int8LinearKernel(const at::Tensor& weight, const at::Tensor& bias, const QuantSpec& weight_spec, const QuantSpec& input_spec,
                   std::optional<QuantParams> static_input);

  at::Tensor forward(const at::Tensor& x) const override;

  // Bytes held: the int8 weight, the scales, the bias (and the row sums on CUDA).
  std::int64_t bytes() const;
  // The int8 weight [out, in] the kernel multiplies with (shared, not copied).
  const at::Tensor& int8_weight() const { return weight_; }

 private:
  at::Tensor weight_;      // [out, in] int8, on the weight's device
  at::Tensor w_scales_;    // [out] or [1] float32
  at::Tensor w_row_sums_;  // [out] int32, for asymmetric activations on CUDA
  at::Tensor bias_;        // [out] float32 or undefined
  QuantSpec input_spec_;
  std::optional<QuantParams> static_input_;  // scale and zero-point tensors of one element
};

// Why a recipe cannot run on the INT8 kernels (empty when it can): 8-bit symmetric
// per-tensor/per-channel weights and 8-bit per-tensor activations, built-in quantizer.
std::string int8_execution_blocker(const QuantSpec& weights, const QuantSpec& activations, const std::string& quantizer_kind);

}  // namespace cushioncache
