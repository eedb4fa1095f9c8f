#include "cushioncache/quant/int8_linear.h"

#include <tuple>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "cushioncache/core/error.h"

namespace cushioncache {

std::string int8_execution_blocker(const QuantSpec& weights, const QuantSpec& activations, const std::string& quantizer_kind) {
  if (quantizer_kind != "uniform")
    return fmt::format("quantizer '{}' is not the built-in uniform one, whose scales the INT8 kernels reproduce", quantizer_kind);
  if (weights.bits != 8 || !weights.symmetric ||
      (weights.granularity != Granularity::kPerTensor && weights.granularity != Granularity::kPerChannel))
    return fmt::format("weights '{}' are not 8-bit symmetric per-tensor or per-channel", weights.to_string());
  if (activations.bits != 8 ||
      (activations.granularity != Granularity::kPerTensor &&
       !(activations.granularity == Granularity::kPerToken && activations.mode == RangeMode::kDynamic)))
    return fmt::format("activations '{}' are not 8-bit per-tensor (static or dynamic) or per-token (dynamic)", activations.to_string());
  return {};
}

Int8LinearKernel::Int8LinearKernel(const at::Tensor& weight, const at::Tensor& bias, const QuantSpec& weight_spec,
                                   const QuantSpec& input_spec, std::optional<QuantParams> static_input) {
  if (const std::string why = int8_execution_blocker(weight_spec, input_spec, "uniform"); !why.empty())
    throw_error(ErrorKind::kUnsupported, "Int8LinearKernel: {}", why);
  if (input_spec.mode == RangeMode::kStatic && !static_input)
    throw_error(ErrorKind::kInvalidArgument, "Int8LinearKernel: static activations '{}' need their calibrated range", input_spec.to_string());
  if (!kernels::has_int8_linear_backend(weight.device().type()))
    throw_error(ErrorKind::kUnsupported,
                "INT8 execution on {} needs its kernels: {}", weight.device().str(),
                weight.device().is_cuda() ? "build with nvcc and link cushioncache::cuda (find_package(CushionCache COMPONENTS cuda))"
                : weight.device().is_cpu() ? "oneDNN (libdnnl-dev), which this build was configured without"
                                           : "only CPU and CUDA have them");
  const at::Tensor w = weight.detach().to(at::kFloat);
  // The fake-quantized weight's range gives back its scale: max |W_fq| = 127 * scale.
  const at::Tensor min = weight_spec.granularity == Granularity::kPerChannel ? w.amin(1) : w.min().reshape({1});
  const at::Tensor max = weight_spec.granularity == Granularity::kPerChannel ? w.amax(1) : w.max().reshape({1});
  const QuantParams p = params_for_range(min, max, weight_spec);
  const at::Tensor w_scales = p.scale.contiguous();
  const at::Tensor q = at::round(w / w_scales.unsqueeze(1));
  // A float32 weight must be exactly int8 x scale. A bfloat16/float16 model (on a GPU)
  // holds its fake-quantized weight rounded to that dtype (bfloat16 keeps 8 significant
  // bits), which moves values by up to about one int8 step and its range with them: there
  // the weight is quantized anew with the same spec, equal to the fake-quantized one up to
  // that rounding, and cannot be checked.
  const bool exact = weight.scalar_type() == at::kFloat || weight.scalar_type() == at::kDouble;
  if (exact && !at::allclose(q * w_scales.unsqueeze(1), w, 1e-5, 1e-6))
    throw_error(ErrorKind::kInvalidArgument, "Int8LinearKernel: the weight is not fake-quantized with '{}'", weight_spec.to_string());
  weight_ = kernels::make_int8_weight(q.clamp(-128, 127).to(at::kChar), w_scales, bias.defined() ? bias.detach() : at::Tensor());
  input_.symmetric = input_spec.symmetric;
  std::tie(input_.qmin, input_.qmax) = integer_range(input_spec);
  if (static_input) {
    input_.range = kernels::ActivationRange::kStatic;
    input_.scale = static_input->scale.reshape({1}).to(weight.device(), at::kFloat);
    input_.zero_point = static_input->zero_point.reshape({1}).to(weight.device(), at::kFloat);
  } else {
    input_.range = input_spec.granularity == Granularity::kPerToken ? kernels::ActivationRange::kDynamicPerToken
                                                                     : kernels::ActivationRange::kDynamicPerSequence;
  }
}

at::Tensor Int8LinearKernel::forward(const at::Tensor& x) const {
  try {
    return kernels::int8_linear(x, weight_, input_);
  } catch (const Error& e) {
    throw_error(e.kind(), "Int8LinearKernel: {}", e.message());
  }
}

std::int64_t Int8LinearKernel::bytes() const {
  return weight_.values.numel() + weight_.scales.numel() * 4 + weight_.row_sums.numel() * 4 +
         (weight_.bias.defined() ? weight_.bias.numel() * 4 : 0);
}

}  // namespace cushioncache
