#include "cushioncache/kernels/int8_ops.h"

#include <array>
#include <atomic>
#include <vector>

#include <ATen/ATen.h>

#include "cushioncache/core/error.h"
#include "cushioncache/kernels/affine_params.h"
#include "cushioncache/kernels/int8_gemm.h"

namespace cushioncache::kernels {
namespace {

constexpr std::size_t kDeviceTypes = static_cast<std::size_t>(c10::DeviceType::COMPILE_TIME_MAX_DEVICE_TYPES);
// Zero-initialised before any dynamic initialisation, so a backend library's static
// initializer may register whenever it runs.
std::array<std::atomic<Int8LinearBackend>, kDeviceTypes> backends{};

// The CPU backend: quantize with ATen in fake quantization's arithmetic (divide, round half
// to even, shift, clamp), then oneDNN's GEMM with the scales in its epilogue.
at::Tensor cpu_int8_linear(const Int8LinearProblem& p) {
  const ActivationQuant& a = *p.input;
  const Int8Weight& w = *p.weight;
  const at::Tensor x = p.x.to(at::kFloat).contiguous();
  const std::int64_t m = x.size(0), in = x.size(1), out = w.values.size(0);
  at::Tensor scales = a.scale, zero_points = a.zero_point;
  if (p.rows_per_scale > 0) std::tie(scales, zero_points) = dynamic_activation_params(p);
  scales = scales.reshape({-1}).to(at::kFloat).contiguous();
  zero_points = zero_points.reshape({-1}).to(at::kFloat).contiguous();
  const bool one_pair = scales.numel() == 1;
  // Each row's pair, broadcast over its features.
  const at::Tensor row_scale = one_pair ? scales.reshape({}) : scales.repeat_interleave(p.rows_per_scale).narrow(0, 0, m).unsqueeze(1);
  const at::Tensor row_zero = one_pair ? zero_points.reshape({}) : zero_points.repeat_interleave(p.rows_per_scale).narrow(0, 0, m).unsqueeze(1);
  const at::Tensor q = x.div(row_scale).round_().add_(row_zero).clamp_(static_cast<double>(a.qmin), static_cast<double>(a.qmax));
  const at::Tensor qa = q.to(a.symmetric ? at::kChar : at::kByte).contiguous();
  at::Tensor y = at::empty({m, out}, x.options());
  const at::Tensor zero_ints = zero_points.to(at::kInt).contiguous();
  Int8Gemm gemm;
  gemm.m = m, gemm.n = out, gemm.k = in;
  gemm.a = qa.data_ptr();
  gemm.a_unsigned = !a.symmetric;
  if (one_pair) {
    gemm.a_scale = scales.item<float>();
    gemm.a_zero_point = zero_ints.item<std::int32_t>();
  } else {
    gemm.a_rows_per_scale = p.rows_per_scale;
    gemm.a_scales = scales.data_ptr<float>();
    gemm.a_zero_points = zero_ints.data_ptr<std::int32_t>();
    gemm.w_row_sums = w.row_sums.data_ptr<std::int32_t>();
  }
  gemm.w = w.values.data_ptr<std::int8_t>();
  gemm.w_scales = w.scales.data_ptr<float>();
  gemm.w_per_channel = w.scales.numel() > 1;
  gemm.bias = w.bias.defined() ? w.bias.data_ptr<float>() : nullptr;
  gemm.y = y.data_ptr<float>();
  int8_gemm_cpu(gemm);
  return y;
}

}  // namespace

Int8Weight make_int8_weight(const at::Tensor& values, const at::Tensor& scales, const at::Tensor& bias) {
  if (values.scalar_type() != at::kChar || values.dim() != 2)
    throw_error(ErrorKind::kInvalidArgument, "int8 weight: values must be a 2-D int8 tensor, not {} with {} dimensions",
                c10::toString(values.scalar_type()), values.dim());
  if (scales.numel() != 1 && scales.numel() != values.size(0))
    throw_error(ErrorKind::kMismatch, "int8 weight: {} scales for {} output channels (one, or one per channel)", scales.numel(), values.size(0));
  if (bias.defined() && bias.numel() != values.size(0))
    throw_error(ErrorKind::kMismatch, "int8 weight: bias has {} values for {} output channels", bias.numel(), values.size(0));
  Int8Weight w;
  w.values = values.contiguous();
  w.scales = scales.reshape({-1}).to(values.device(), at::kFloat).contiguous();
  w.row_sums = w.values.sum(1, /*keepdim=*/false, at::kInt).contiguous();
  if (bias.defined()) w.bias = bias.detach().reshape({-1}).to(values.device(), at::kFloat).contiguous();
  return w;
}

std::pair<at::Tensor, at::Tensor> dynamic_activation_params(const Int8LinearProblem& p) {
  const ActivationQuant& a = *p.input;
  const std::int64_t m = p.x.size(0);
  // Groups of rows_per_scale rows; the rows_per_scale divide M by construction (int8_linear).
  const at::Tensor groups = p.x.reshape({m / p.rows_per_scale, -1});
  const auto [lo, hi] = at::aminmax(groups, 1);
  return affine_params(lo, hi, a.symmetric, a.qmin, a.qmax);
}

at::Tensor int8_linear(const at::Tensor& x, const Int8Weight& weight, const ActivationQuant& input) {
  const std::int64_t in = weight.values.size(1), out = weight.values.size(0);
  if (x.dim() < 1 || x.size(-1) != in)
    throw_error(ErrorKind::kMismatch, "int8 linear: the input has {} features, the weight {}", x.dim() < 1 ? 0 : x.size(-1), in);
  if (x.device() != weight.values.device())
    throw_error(ErrorKind::kMismatch, "int8 linear: the input is on {}, the weight on {}", x.device().str(), weight.values.device().str());
  if (input.range == ActivationRange::kStatic && (!input.scale.defined() || !input.zero_point.defined()))
    throw_error(ErrorKind::kInvalidArgument, "int8 linear: static activations need their calibrated scale and zero-point");
  const c10::DeviceType device = x.device().type();
  const Int8LinearBackend backend = device == c10::DeviceType::CPU ? &cpu_int8_linear : backends[static_cast<std::size_t>(device)].load();
  if (backend == nullptr)
    throw_error(ErrorKind::kUnsupported, "int8 linear: no INT8 backend for {} tensors{}", x.device().str(),
                x.is_cuda() ? " (link the CUDA component: find_package(CushionCache COMPONENTS cuda), target cushioncache::cuda)" : "");
  std::vector<std::int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = out;
  Int8LinearProblem problem;
  problem.x = x.reshape({-1, in}).contiguous();
  const std::int64_t m = problem.x.size(0);
  if (m == 0) return at::empty(shape, x.options());
  switch (input.range) {
    case ActivationRange::kStatic: problem.rows_per_scale = 0; break;
    // As fake quantization takes them (quant/quantizer.h): a range per sequence of a
    // [B, T, in] input. The kernels see no mask: padding counts in the range here.
    case ActivationRange::kDynamicPerSequence: problem.rows_per_scale = x.dim() >= 3 ? m / x.size(0) : m; break;
    case ActivationRange::kDynamicPerToken: problem.rows_per_scale = 1; break;
  }
  problem.input = &input;
  problem.weight = &weight;
  return backend(problem).view(shape).to(x.scalar_type());
}

void register_int8_linear_backend(c10::DeviceType device, Int8LinearBackend backend) {
  if (device == c10::DeviceType::CPU) throw_error(ErrorKind::kInvalidArgument, "int8 linear: the CPU backend is built in");
  backends[static_cast<std::size_t>(device)].store(backend);
}

bool has_int8_linear_backend(c10::DeviceType device) {
  return device == c10::DeviceType::CPU ? cpu_int8_gemm_available() : backends[static_cast<std::size_t>(device)].load() != nullptr;
}

}  // namespace cushioncache::kernels
