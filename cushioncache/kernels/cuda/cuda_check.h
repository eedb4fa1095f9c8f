// Errors from CUDA code, raised as cushioncache::Error by host-compiled code (the .cu
// files stay free of fmt and the error machinery, which nvcc need not see).
#pragma once

namespace cushioncache::kernels::cuda {

[[noreturn]] void fail_invalid_argument(const char* what);
// Throws kUnsupported (no device, no driver) or kInternal naming `what` unless code == 0.
void check_cuda(int code, const char* what);
// kInternal for a failed call into a CUDA library (cuBLASLt): its name, status code
// and text, and what was being done.
[[noreturn]] void fail_cuda_library(const char* library, int status, const char* status_text, const char* what);
// For clean-up that cannot throw (destructors): logs a warning naming the failed call.
void warn_cleanup_failure(const char* library, int status, const char* status_text, const char* call);

}  // namespace cushioncache::kernels::cuda
