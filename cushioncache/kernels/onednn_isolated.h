// The CPU INT8 GEMM's oneDNN 2.x when a LibTorch with its own oneDNN shares the process
// (PyTorch's wheels: oneDNN 3.x linked into libtorch_cpu). The two oneDNNs export the
// same weak template symbols, among them the call_once thunks that build the JIT GEMM
// kernels, so whichever loads first builds its own kernels for both and the other one
// computes with empty kernel tables (zeros and NaN). onednn_isolated.cpp loads Debian's
// libdnnl on its own (dlopen, RTLD_LOCAL | RTLD_DEEPBIND) and serves the oneDNN C
// functions int8_gemm_cpu.cpp calls from it.
#pragma once

#include <string>

namespace cushioncache::kernels {

// Loads the library on first use; false (and why) when it cannot be loaded.
bool isolated_onednn_loaded(std::string* why = nullptr);

}  // namespace cushioncache::kernels
