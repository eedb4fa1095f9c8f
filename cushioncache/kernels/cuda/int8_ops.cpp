#include "cushioncache/kernels/cuda/int8_ops.h"

#include <vector>

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>
#ifdef CC_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

#include "cushioncache/core/error.h"
#include "cushioncache/kernels/cuda/int8_gemm_kernels.h"
#include "cushioncache/kernels/cuda/quantize_kernels.h"
#include "cushioncache/quant/fake_quant.h"
#include "cushioncache/quant/int8_linear.h"

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

at::Tensor cuda_int8_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& w_scales, const at::Tensor& w_row_sums,
                            const at::Tensor& bias, const QuantSpec& input_spec, const std::optional<QuantParams>& input) {
  const c10::DeviceGuard on_device(x.device());
  const std::int64_t in = weight.size(1), out = weight.size(0);
  const FloatType type = float_type(x.scalar_type());
  const Stream stream = current_stream(x.device());
  // Dynamic ranges are per sequence, as on the CPU (quant/int8_linear.cpp).
  const std::int64_t groups = input || x.dim() < 3 ? 1 : x.size(0);
  const at::Tensor x3 = x.reshape({groups, -1, in}).contiguous();
  const std::int64_t rows = x3.size(1);
  at::Tensor y = at::empty({groups, rows, out}, x3.options());
  const bool unsigned_input = !input_spec.symmetric;
  const auto [qmin, qmax] = integer_range(input_spec);
  const at::TensorOptions floats = x3.options().dtype(at::kFloat);
  at::Tensor q = at::empty({rows, in}, x3.options().dtype(unsigned_input ? at::kByte : at::kChar));
  // One runner per (device, stream): its cuBLASLt buffers are stream-ordered on one stream of
  // one device, which a per-thread runner would carry across streams and devices.
  Int8GemmRunner& runner = shared_runner(static_cast<int>(x.device().index()), stream);
  for (std::int64_t g = 0; g < groups && rows > 0; ++g) {
    const at::Tensor xg = x3[g];
    at::Tensor scale, zero_point;
    if (input) {
      scale = input->scale.reshape({1}).to(at::kFloat).contiguous();
      zero_point = input->zero_point.reshape({1}).to(at::kFloat).contiguous();
    } else if (input_spec.symmetric) {
      // Abs-max and scale on the device: no host synchronisation. A NaN in x makes the
      // scale NaN, so the output is NaN as on the CPU, where the callers' checks see it.
      const at::Tensor absmax_value = at::empty({1}, floats), nans = at::empty({1}, floats.dtype(at::kInt));
      scale = at::empty({1}, floats);
      zero_point = at::zeros({1}, floats);
      absmax(xg.data_ptr(), type, xg.numel(), absmax_value.data_ptr<float>(), reinterpret_cast<unsigned*>(nans.data_ptr<int>()), stream);
      scale_from_absmax(absmax_value.data_ptr<float>(), reinterpret_cast<const unsigned*>(nans.data_ptr<int>()), static_cast<int>(qmax),
                        scale.data_ptr<float>(), stream);
    } else {
      // params_for_range's arithmetic on the device, dividing exactly: through ATen, its
      // division by the host scalar 255 would be a multiplication by the reciprocal on
      // CUDA, one ulp off the CPU's scale.
      const auto [lo, hi] = at::aminmax(xg);
      const at::Tensor lo_f = lo.reshape({1}).to(at::kFloat).contiguous(), hi_f = hi.reshape({1}).to(at::kFloat).contiguous();
      scale = at::empty({1}, floats);
      zero_point = at::empty({1}, floats);
      asymmetric_params_from_range(lo_f.data_ptr<float>(), hi_f.data_ptr<float>(), static_cast<int>(qmin), static_cast<int>(qmax),
                                   scale.data_ptr<float>(), zero_point.data_ptr<float>(), stream);
    }
    quantize_per_tensor(xg.data_ptr(), type, xg.numel(), scale.data_ptr<float>(), zero_point.data_ptr<float>(), static_cast<int>(qmin),
                        static_cast<int>(qmax), q.data_ptr(), unsigned_input, stream);
    GemmS8S8 p;
    p.m = rows, p.n = out, p.k = in;
    p.a = q.data_ptr();
    p.a_unsigned = unsigned_input;
    p.a_scale = scale.data_ptr<float>();
    p.a_zero_point = unsigned_input ? zero_point.data_ptr<float>() : nullptr;
    p.w = weight.data_ptr<std::int8_t>();
    p.w_scales = w_scales.data_ptr<float>();
    p.w_per_channel = w_scales.numel() > 1;
    p.w_row_sums = unsigned_input ? w_row_sums.data_ptr<std::int32_t>() : nullptr;
    p.bias = bias.defined() ? bias.data_ptr<float>() : nullptr;
    p.y = y[g].data_ptr();
    p.y_type = type;
    runner.run(p, GemmBackend::kAuto, stream);
  }
  std::vector<std::int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = out;
  return y.view(shape);
}

const CudaInt8Ops kOps{&cuda_int8_linear};

}  // namespace

void register_cuda_int8_ops() { set_cuda_int8_ops(&kOps); }

}  // namespace cushioncache::kernels::cuda
