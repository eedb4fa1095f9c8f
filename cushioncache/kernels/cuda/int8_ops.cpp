// The CUDA backend of the W8A8 linear op (kernels/int8_ops.h): maps CUDA tensors onto the
// framework-free kernels (int8_gemm_kernels.h, quantize_kernels.h) on LibTorch's current
// stream. It registers itself when this library is loaded, so linking cushioncache::cuda
// is all a program does to run INT8 layers on GPUs.

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>
#ifdef CC_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

#include "cushioncache/core/error.h"
#include "cushioncache/kernels/cuda/int8_gemm_kernels.h"
#include "cushioncache/kernels/cuda/quantize_kernels.h"
#include "cushioncache/kernels/int8_ops.h"

namespace cushioncache::kernels::cuda {
namespace {

FloatType float_type(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return FloatType::kFloat32;
    case at::kHalf: return FloatType::kFloat16;
    case at::kBFloat16: return FloatType::kBFloat16;
    default: throw_error(ErrorKind::kUnsupported, "INT8 execution on CUDA takes float32, float16 or bfloat16 inputs, not {}", c10::toString(type));
  }
}

// LibTorch's current stream on `device`, so the kernels order with the model's other work
// (and with a caller's stream guard).
Stream current_stream(const c10::Device& device) {
#ifdef CC_TORCH_CUDA
  return static_cast<Stream>(c10::cuda::getCurrentCUDAStream(device.index()).stream());
#else
  // A CPU LibTorch (no CUDA tensors, only the kernel tests): the default stream.
  (void)device;
  return nullptr;
#endif
}

at::Tensor cuda_int8_linear(const Int8LinearProblem& problem) {
  const at::Tensor& x = problem.x;
  const ActivationQuant& input = *problem.input;
  const Int8Weight& weight = *problem.weight;
  const c10::DeviceGuard on_device(x.device());
  const std::int64_t m = x.size(0), in = x.size(1), out = weight.values.size(0);
  const FloatType type = float_type(x.scalar_type());
  const Stream stream = current_stream(x.device());
  const bool unsigned_input = !input.symmetric;
  const at::TensorOptions floats = x.options().dtype(at::kFloat);
  // One pair for all rows (static), or one per group of rows_per_scale rows.
  const std::int64_t groups = problem.rows_per_scale > 0 ? m / problem.rows_per_scale : 1;
  const std::int64_t group_elements = problem.rows_per_scale > 0 ? problem.rows_per_scale * in : m * in;
  at::Tensor scale, zero_point;
  if (problem.rows_per_scale == 0) {
    scale = input.scale.reshape({1}).to(at::kFloat).contiguous();
    zero_point = input.zero_point.reshape({1}).to(at::kFloat).contiguous();
  } else if (input.symmetric) {
    // Abs-max and scales on the device: no host synchronisation. A NaN in x makes every
    // scale NaN, so the output is NaN as on the CPU, where the callers' checks see it.
    const at::Tensor absmax_values = at::empty({groups}, floats), nans = at::empty({1}, floats.dtype(at::kInt));
    unsigned* nan_count = reinterpret_cast<unsigned*>(nans.data_ptr<int>());
    if (groups == 1)
      absmax(x.data_ptr(), type, x.numel(), absmax_values.data_ptr<float>(), nan_count, stream);
    else
      absmax_per_row(x.data_ptr(), type, groups, group_elements, absmax_values.data_ptr<float>(), nan_count, stream);
    scale = at::empty({groups}, floats);
    zero_point = at::zeros({groups}, floats);
    scale_from_absmax(absmax_values.data_ptr<float>(), nan_count, static_cast<int>(input.qmax), scale.data_ptr<float>(), stream, groups);
  } else {
    // params_for_range's arithmetic on the device, dividing exactly: through ATen, its
    // division by the host scalar 255 would be a multiplication by the reciprocal on
    // CUDA, one ulp off the CPU's scale.
    const auto [lo, hi] = at::aminmax(x.reshape({groups, -1}), 1);
    const at::Tensor lo_f = lo.to(at::kFloat).contiguous(), hi_f = hi.to(at::kFloat).contiguous();
    scale = at::empty({groups}, floats);
    zero_point = at::empty({groups}, floats);
    asymmetric_params_from_range(lo_f.data_ptr<float>(), hi_f.data_ptr<float>(), static_cast<int>(input.qmin), static_cast<int>(input.qmax),
                                 scale.data_ptr<float>(), zero_point.data_ptr<float>(), stream, groups);
  }
  at::Tensor q = at::empty({m, in}, x.options().dtype(unsigned_input ? at::kByte : at::kChar));
  quantize_per_group(x.data_ptr(), type, m * in, group_elements, scale.data_ptr<float>(), zero_point.data_ptr<float>(),
                     static_cast<int>(input.qmin), static_cast<int>(input.qmax), q.data_ptr(), unsigned_input, stream);
  at::Tensor y = at::empty({m, out}, x.options());
  GemmS8S8 p;
  p.m = m, p.n = out, p.k = in;
  p.a = q.data_ptr();
  p.a_unsigned = unsigned_input;
  p.a_scale = scale.data_ptr<float>();
  p.a_zero_point = unsigned_input ? zero_point.data_ptr<float>() : nullptr;
  p.a_rows_per_scale = problem.rows_per_scale;
  p.w = weight.values.data_ptr<std::int8_t>();
  p.w_scales = weight.scales.data_ptr<float>();
  p.w_per_channel = weight.scales.numel() > 1;
  p.w_row_sums = unsigned_input ? weight.row_sums.data_ptr<std::int32_t>() : nullptr;
  p.bias = weight.bias.defined() ? weight.bias.data_ptr<float>() : nullptr;
  p.y = y.data_ptr();
  p.y_type = type;
  // One runner per (device, stream): its cuBLASLt buffers are stream-ordered on one stream of
  // one device, which a per-thread runner would carry across streams and devices.
  shared_runner(static_cast<int>(x.device().index()), stream).run(p, GemmBackend::kAuto, stream);
  return y;
}

// Registered when the library is loaded (kernels/int8_ops.h's registry is constant-
// initialised, so the order of static initialisers does not matter).
[[maybe_unused]] const bool registered = [] {
  register_int8_linear_backend(c10::DeviceType::CUDA, &cuda_int8_linear);
  return true;
}();

}  // namespace

}  // namespace cushioncache::kernels::cuda
