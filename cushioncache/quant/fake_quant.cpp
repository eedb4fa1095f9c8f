#include "cushioncache/quant/fake_quant.h"

#include <tuple>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "cushioncache/core/error.h"
#include "cushioncache/kernels/affine_params.h"

namespace cushioncache {
namespace {

struct FakeQuantizeSte : public torch::autograd::Function<FakeQuantizeSte> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& scale,
                            const at::Tensor& zero_point, std::int64_t qmin, std::int64_t qmax) {
    const at::Tensor xf = x.to(at::kFloat);
    at::Tensor q = xf.div(scale);
    q.round_().add_(zero_point);  // round() rounds half to even
    if (x.requires_grad()) ctx->save_for_backward({q.ge(static_cast<double>(qmin)).logical_and_(q.le(static_cast<double>(qmax)))});
    return q.clamp_(static_cast<double>(qmin), static_cast<double>(qmax)).sub_(zero_point).mul_(scale).to(x.scalar_type());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const at::Tensor inside = ctx->get_saved_variables()[0];
    const at::Tensor& grad = grads[0];
    return {grad * inside.to(grad.scalar_type()), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

std::pair<std::int64_t, std::int64_t> integer_range(const QuantSpec& spec) {
  if (spec.symmetric) return {-(std::int64_t{1} << (spec.bits - 1)), (std::int64_t{1} << (spec.bits - 1)) - 1};
  return {0, (std::int64_t{1} << spec.bits) - 1};
}

QuantParams params_for_range(const at::Tensor& min, const at::Tensor& max, const QuantSpec& spec) {
  QuantParams p;
  std::tie(p.qmin, p.qmax) = integer_range(spec);
  std::tie(p.scale, p.zero_point) = kernels::affine_params(min, max, spec.symmetric, p.qmin, p.qmax);
  return p;
}

at::Tensor fake_quantize(const at::Tensor& x, const QuantParams& params) {
  return FakeQuantizeSte::apply(x, params.scale, params.zero_point, params.qmin, params.qmax);
}

}  // namespace cushioncache
