#include "cushioncache/kernels/cuda/cuda_check.h"

#include <cuda_runtime_api.h>

#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"

namespace cushioncache::kernels::cuda {

void fail_invalid_argument(const char* what) { throw_error(ErrorKind::kInvalidArgument, "{}", what); }

void check_cuda(int code, const char* what) {
  if (code == 0) return;
  const auto error = static_cast<cudaError_t>(code);
  const bool no_device = error == cudaErrorNoDevice || error == cudaErrorInsufficientDriver;
  throw_error(no_device ? ErrorKind::kUnsupported : ErrorKind::kInternal, "{}: CUDA error {} ({})", what, cudaGetErrorName(error),
              cudaGetErrorString(error));
}

void fail_cuda_library(const char* library, int status, const char* status_text, const char* what) {
  throw_error(ErrorKind::kInternal, "{}: {} status {} ({})", what, library, status, status_text != nullptr ? status_text : "no text");
}

void warn_cleanup_failure(const char* library, int status, const char* status_text, const char* call) {
  log::warn("{}: {} status {} ({}) while releasing resources; continuing", call, library, status, status_text != nullptr ? status_text : "no text");
}

}  // namespace cushioncache::kernels::cuda
