// The LibTorch side of the CUDA INT8 kernels: maps CUDA tensors onto the framework-free
// kernels (int8_gemm_kernels.h, quantize_kernels.h) on the current stream, and hands
// them to Int8LinearKernel (quant/int8_linear.h) so that `--exec int8` runs on GPUs.
#pragma once

namespace cushioncache::kernels::cuda {

// Makes Int8LinearKernel run CUDA weights on these kernels. Call once, before quantizing
// a model on a GPU (the CLI does at start-up); idempotent, thread-safe.
void register_cuda_int8_ops();

}  // namespace cushioncache::kernels::cuda
