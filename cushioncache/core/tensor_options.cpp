#include "cushioncache/core/tensor_options.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include "cushioncache/core/error.h"

namespace cushioncache {

c10::ScalarType parse_float_dtype(std::string_view name) {
  if (name == "float32" || name == "fp32" || name == "float") return at::kFloat;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  if (name == "float16" || name == "fp16" || name == "half") return at::kHalf;
  if (name == "float64" || name == "fp64" || name == "double") return at::kDouble;
  throw_error(ErrorKind::kInvalidArgument, "dtype '{}' is not one of float32, bfloat16, float16, float64", name);
}

std::string dtype_name(c10::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    case at::kDouble: return "float64";
    default: return c10::toString(dtype);
  }
}

c10::Device parse_device(std::string_view name) {
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(std::string(name));
  } catch (const std::exception&) {
    throw_error(ErrorKind::kInvalidArgument, "device '{}' is not 'cpu', 'cuda' or 'cuda:N'", name);
  }
  if (device.is_cuda()) {
    if (!at::hasCUDA()) {
      throw_error(ErrorKind::kUnsupported, "device '{}' requested, but this LibTorch build has no CUDA or no GPU is visible", name);
    }
  } else if (!device.is_cpu()) {
    throw_error(ErrorKind::kUnsupported, "device '{}': only cpu and cuda are supported", name);
  }
  return device;
}

void check_dtype_runs_on(c10::ScalarType dtype, c10::Device device) {
  if (!device.is_cpu() || dtype != at::kHalf) return;
  try {
    auto a = at::ones({2, 2}, at::TensorOptions().dtype(dtype));
    (void)at::mm(a, a);
  } catch (const std::exception&) {
    throw_error(ErrorKind::kUnsupported,
                "float16 matmul is not implemented on CPU by this LibTorch; use float32 or bfloat16 on CPU");
  }
}

}  // namespace cushioncache
