// CUDA kernels for per-tensor INT8 activation quantization: abs-max of a tensor into a
// device scalar (no host synchronisation) and float -> int8 with a per-tensor scale read
// from device memory. Framework-free: raw device pointers and a stream, no LibTorch
// (Debian's LibTorch has no CUDA), so the same code serves any host framework.
//
// Status: compiled in CI for sm_80 and sm_90a; not yet run on a GPU (none was lent to
// the session that wrote them), see docs/quantization.md.
#pragma once

#include <cstdint>

struct CUstream_st;  // cudaStream_t without including the CUDA runtime headers

namespace cushioncache::kernels::cuda {

using Stream = CUstream_st*;

enum class FloatType { kFloat32, kFloat16, kBFloat16 };

// Whether a CUDA device can run these kernels (false without a driver or a GPU).
bool device_available();

// *absmax = max |x| over n elements, written as a float to device memory. `absmax` and
// `nan_count` (one unsigned, device) are zeroed on `stream` first, so the call needs no
// host synchronisation. NaN never hides in the maximum: every NaN element is counted in
// *nan_count, which the caller checks (a NaN scale must not reach the quantizer).
void absmax(const void* x, FloatType type, std::int64_t n, float* absmax, unsigned* nan_count, Stream stream);

// Per token: absmax[r] = max |x[r, :]| for `rows` rows of `cols` elements (float32 out).
void absmax_per_row(const void* x, FloatType type, std::int64_t rows, std::int64_t cols, float* absmax, unsigned* nan_count,
                    Stream stream);

// q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax) for n elements, with
// scale and zero_point single floats in device memory; out is int8 (qmin >= -128,
// qmax <= 127) or uint8 (qmin >= 0, qmax <= 255) as `out_unsigned` says. The arithmetic
// is the CPU's, in float32 and in its order (quantize_math.h): huge and infinite inputs
// saturate at their own end, and NaN gives 0, as LibTorch's CPU conversion does.
void quantize_per_tensor(const void* x, FloatType type, std::int64_t n, const float* scale, const float* zero_point, int qmin,
                         int qmax, void* out, bool out_unsigned, Stream stream);

// The same with one scale and zero-point per group of `group` consecutive elements
// (element i uses scale[i / group]): per sequence or per token of a row-major [M, K] input.
void quantize_per_group(const void* x, FloatType type, std::int64_t n, std::int64_t group, const float* scale, const float* zero_point,
                        int qmin, int qmax, void* out, bool out_unsigned, Stream stream);

}  // namespace cushioncache::kernels::cuda
