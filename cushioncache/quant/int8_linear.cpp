#include "cushioncache/quant/int8_linear.h"

#include <atomic>
#include <vector>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "cushioncache/core/error.h"
#include "cushioncache/kernels/int8_gemm.h"

namespace cushioncache {

std::string int8_execution_blocker(const QuantSpec& weights, const QuantSpec& activations, const std::string& quantizer_kind) {
  if (quantizer_kind != "uniform")
    return fmt::format("quantizer '{}' is not the built-in uniform one, whose scales the INT8 kernels reproduce", quantizer_kind);
  if (weights.bits != 8 || !weights.symmetric ||
      (weights.granularity != Granularity::kPerTensor && weights.granularity != Granularity::kPerChannel))
    return fmt::format("weights '{}' are not 8-bit symmetric per-tensor or per-channel", weights.to_string());
  if (activations.bits != 8 || activations.granularity != Granularity::kPerTensor)
    return fmt::format("activations '{}' are not 8-bit per-tensor", activations.to_string());
  return {};
}

namespace {
std::atomic<const CudaInt8Ops*> registered_cuda_ops{nullptr};
}  // namespace

void set_cuda_int8_ops(const CudaInt8Ops* ops) { registered_cuda_ops.store(ops); }

Int8LinearKernel::Int8LinearKernel(const at::Tensor& weight, const at::Tensor& bias, const QuantSpec& weight_spec,
                                   const QuantSpec& input_spec, std::optional<QuantParams> static_input)
    : input_spec_(input_spec), static_input_(std::move(static_input)) {
  if (weight.device().is_cuda() && registered_cuda_ops == nullptr)
    throw_error(ErrorKind::kUnsupported,
                "INT8 execution on CUDA needs the CUDA kernels: build with nvcc (cushioncache_cuda_kernels) and call "
                "register_cuda_int8_ops() (kernels/cuda/int8_ops.h) before quantizing");
  if (!weight.device().is_cpu() && !weight.device().is_cuda())
    throw_error(ErrorKind::kUnsupported, "INT8 execution runs on CPU (oneDNN) or CUDA, not {}", weight.device().str());
  const at::Tensor w = weight.detach().to(at::kFloat);
  // The fake-quantized weight's range gives back its scale: max |W_fq| = 127 * scale.
  const at::Tensor min = weight_spec.granularity == Granularity::kPerChannel ? w.amin(1) : w.min().reshape({1});
  const at::Tensor max = weight_spec.granularity == Granularity::kPerChannel ? w.amax(1) : w.max().reshape({1});
  const QuantParams p = params_for_range(min, max, weight_spec);
  w_scales_ = p.scale.contiguous();
  const at::Tensor q = at::round(w / w_scales_.unsqueeze(1));
  // A float32 weight must be exactly int8 x scale. A bfloat16/float16 model (on a GPU)
  // holds its fake-quantized weight rounded to that dtype (bfloat16 keeps 8 significant
  // bits), which moves values by up to about one int8 step and its range with them: there
  // the weight is quantized anew with the same spec, equal to the fake-quantized one up to
  // that rounding, and cannot be checked.
  const bool exact = weight.scalar_type() == at::kFloat || weight.scalar_type() == at::kDouble;
  if (exact && !at::allclose(q * w_scales_.unsqueeze(1), w, 1e-5, 1e-6))
    throw_error(ErrorKind::kInvalidArgument, "Int8LinearKernel: the weight is not fake-quantized with '{}'", weight_spec.to_string());
  weight_ = q.clamp(-128, 127).to(at::kChar).contiguous();
  if (bias.defined()) bias_ = bias.detach().to(at::kFloat).contiguous();
  if (weight_.is_cuda()) {
    w_row_sums_ = weight_.sum(1, /*keepdim=*/false, at::kInt).contiguous();
    if (static_input_) static_input_ = QuantParams{static_input_->scale.to(weight_.device()), static_input_->zero_point.to(weight_.device()),
                                                   static_input_->qmin, static_input_->qmax};
  }
}

at::Tensor Int8LinearKernel::forward(const at::Tensor& x) const {
  const std::int64_t in = weight_.size(1), out = weight_.size(0);
  if (x.size(-1) != in) throw_error(ErrorKind::kMismatch, "Int8LinearKernel: input has {} features, the weight {}", x.size(-1), in);
  if (x.device() != weight_.device())
    throw_error(ErrorKind::kMismatch, "Int8LinearKernel: input on {}, the weight on {}", x.device().str(), weight_.device().str());
  if (weight_.is_cuda()) return registered_cuda_ops.load()->linear(x, weight_, w_scales_, w_row_sums_, bias_, input_spec_, static_input_);
  // Dynamic per-tensor ranges are per sequence, as fake quantization takes them
  // (quant/quantizer.h), so each sequence of a [B, T, in] input is its own GEMM.
  const std::int64_t groups = static_input_ || x.dim() < 3 ? 1 : x.size(0);
  const at::Tensor x3 = x.reshape({groups, -1, in}).to(at::kFloat).contiguous();
  at::Tensor y = at::empty({groups, x3.size(1), out}, x3.options());
  const bool unsigned_input = !input_spec_.symmetric;
  for (std::int64_t g = 0; g < groups; ++g) {
    const at::Tensor xg = x3[g];
    QuantParams p;
    if (static_input_) {
      p = *static_input_;
    } else {
      // The kernel sees no mask: padding counts in the range here, unlike fake quantization.
      const auto [lo, hi] = at::aminmax(xg);
      p = params_for_range(lo.reshape({1}), hi.reshape({1}), input_spec_);
    }
    const float scale = p.scale.item<float>();
    const std::int32_t zero_point = static_cast<std::int32_t>(p.zero_point.item<float>());
    // The same arithmetic as fake quantization: divide, round half to even, shift, clamp.
    const at::Tensor q = xg.div(p.scale.reshape({})).round_().add_(zero_point).clamp_(static_cast<double>(p.qmin), static_cast<double>(p.qmax));
    const at::Tensor qa = q.to(unsigned_input ? at::kByte : at::kChar).contiguous();
    at::Tensor yg = y[g];
    kernels::Int8Gemm gemm;
    gemm.m = xg.size(0), gemm.n = out, gemm.k = in;
    gemm.a = qa.data_ptr();
    gemm.a_unsigned = unsigned_input;
    gemm.a_zero_point = zero_point;
    gemm.a_scale = scale;
    gemm.w = weight_.data_ptr<std::int8_t>();
    gemm.w_scales = w_scales_.data_ptr<float>();
    gemm.w_per_channel = w_scales_.numel() > 1;
    gemm.bias = bias_.defined() ? bias_.data_ptr<float>() : nullptr;
    gemm.y = yg.data_ptr<float>();
    if (gemm.m > 0) kernels::int8_gemm_cpu(gemm);
  }
  std::vector<std::int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = out;
  return y.view(shape).to(x.scalar_type());
}

std::int64_t Int8LinearKernel::bytes() const {
  return weight_.numel() + w_scales_.numel() * 4 + (bias_.defined() ? bias_.numel() * 4 : 0) +
         (w_row_sums_.defined() ? w_row_sums_.numel() * 4 : 0);
}

}  // namespace cushioncache
