// CC_HOST_DEVICE marks a function that the CUDA kernels call and that the host test suite
// also compiles and runs (tests/test_gemm_mapping.cpp, tests/test_cuda_kernels.cpp), so a
// CPU without a GPU checks the very code the kernels run. Under nvcc it is
// `__host__ __device__`; for the host compiler it is nothing. Defining our own macro,
// rather than defining `__host__`/`__device__` away, keeps these headers includable next
// to the CUDA runtime headers, which define those names themselves.
#pragma once

#if defined(__CUDACC__)
#define CC_HOST_DEVICE __host__ __device__
#else
#define CC_HOST_DEVICE
#endif
