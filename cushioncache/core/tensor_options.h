// Names for dtypes and devices as users type them ("bfloat16", "cuda:1"), checked
// against what this LibTorch build can run.
#pragma once

#include <string>
#include <string_view>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace cushioncache {

// "float32"|"fp32"|"float", "bfloat16"|"bf16", "float16"|"fp16"|"half", "float64"|"double".
c10::ScalarType parse_float_dtype(std::string_view name);
std::string dtype_name(c10::ScalarType dtype);

// "cpu", "cuda", "cuda:N"; throws kUnsupported when CUDA is asked for and this build or
// machine has none.
c10::Device parse_device(std::string_view name);

// Throws kUnsupported if matmuls in `dtype` cannot run on `device` with this LibTorch
// (float16 on CPU is missing from LibTorch 1.13).
void check_dtype_runs_on(c10::ScalarType dtype, c10::Device device);

}  // namespace cushioncache
