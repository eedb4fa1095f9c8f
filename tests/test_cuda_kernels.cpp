// The CUDA quantization kernels against host references: abs-max (whole tensor and per
// row, NaN counted), per-tensor quantization with round half to even, and the INT8 GEMM
// (both backends) against a float64 reference over int64 sums. Built wherever nvcc is;
// run only where a GPU is (skipped otherwise, also in CI), except what needs no device,
// which runs everywhere: the precondition checks (they come before any CUDA call), the
// quantization arithmetic the kernels share with the host (quantize_math.h) against
// LibTorch's CPU results, and the runner cache.
#include <cuda_runtime_api.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include <ATen/ATen.h>

#include "cushioncache/kernels/cuda/int8_gemm_kernels.h"
#include "cushioncache/kernels/int8_ops.h"
#include "cushioncache/kernels/cuda/quantize_kernels.h"
#include "cushioncache/kernels/cuda/quantize_math.h"
#include "cushioncache/quant/fake_quant.h"
#include "cushioncache/quant/int8_linear.h"
#include "cushioncache/quant/spec.h"
#include "support/test_support.h"

#include <catch2/catch.hpp>  // last: glog (through ATen) defines CHECK too

namespace cc = cushioncache;
namespace cuda = cushioncache::kernels::cuda;

namespace {

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  explicit DeviceBuffer(std::size_t n) { REQUIRE(cudaMalloc(reinterpret_cast<void**>(&ptr), std::max<std::size_t>(n, 1) * sizeof(T)) == cudaSuccess); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void upload(const std::vector<T>& host) { REQUIRE(cudaMemcpy(ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess); }
  std::vector<T> download(std::size_t n) const {
    std::vector<T> host(n);
    REQUIRE(cudaMemcpy(host.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return host;
  }
};

bool have_gpu() {
  if (cuda::device_available()) return true;
  cc::testing::skip_without_hardware("no CUDA device");
  return false;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

// Inputs where quantization goes wrong if anything is off: halves (rounding), both ends
// of both ranges and just past them, huge and infinite values (saturation), NaN, signed
// zeros, subnormals; then ordinary values.
std::vector<float> quantization_inputs() {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x{0.5f,    1.5f,    2.5f,   -0.5f,   -1.5f,    -2.5f,    0.0f,    -0.0f,   1e-45f,  -1e-45f, 126.5f,
                       127.5f,  128.5f,  -127.5f, -128.5f, -129.5f, 254.5f,  255.5f,  -255.5f, 1e9f,    -1e9f,   1e30f,
                       -1e30f,  FLT_MAX, -FLT_MAX, inf,     -inf,    std::numeric_limits<float>::quiet_NaN(), 3.0e38f, 0.26f, -3.74f};
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.0f, 60.0f);
  for (int i = 0; i < 2000; ++i) x.push_back(normal(rng));
  return x;
}

// What the CPU INT8 path (quant/int8_linear.cpp) computes for one tensor: LibTorch's
// division, rounding, shift and clamp, then its integer conversion.
std::vector<long> cpu_quantized(const std::vector<float>& x, float scale, float zero_point, long qmin, long qmax, bool out_unsigned) {
  const at::Tensor xt = at::tensor(at::ArrayRef<float>(x));
  const at::Tensor q = xt.div(at::scalar_tensor(scale)).round_().add_(zero_point).clamp_(static_cast<double>(qmin), static_cast<double>(qmax))
                           .to(out_unsigned ? at::kByte : at::kChar);
  const at::Tensor wide = q.to(at::kLong);
  return std::vector<long>(wide.data_ptr<std::int64_t>(), wide.data_ptr<std::int64_t>() + wide.numel());
}

// The (scale, zero-point, qmin, qmax) combinations the W8A8 layer uses: uint8 with its
// zero-point anywhere in range, int8 symmetric; a scale at params_for_range's floor.
struct QuantCase {
  float scale, zero_point;
  long qmin, qmax;
  bool out_unsigned;
};
std::vector<QuantCase> quantization_cases() {
  std::vector<QuantCase> cases;
  for (float scale : {1.0f, 0.0173f, 1e-10f, 37.5f}) {
    for (float zero_point : {0.0f, 131.0f, 255.0f}) cases.push_back({scale, zero_point, 0, 255, true});
    cases.push_back({scale, 0.0f, -128, 127, false});
  }
  return cases;
}

}  // namespace

TEST_CASE("cuda quantize arithmetic: each element is what LibTorch's CPU path gives, saturation and NaN included", "[cuda]") {
  // No device needed: quantize_element is the code the quantize kernel runs, compiled for
  // the host. LibTorch's CPU operations are the reference: the CPU INT8 path's integer,
  // and fake quantization's value for every input but NaN (an integer cannot hold NaN;
  // a NaN input makes a dynamic scale NaN, so the output is NaN on both paths anyway).
  const std::vector<float> x = quantization_inputs();
  for (const QuantCase& c : quantization_cases()) {
    INFO("scale " << c.scale << ", zero-point " << c.zero_point << ", [" << c.qmin << ", " << c.qmax << "]");
    const std::vector<long> expected = cpu_quantized(x, c.scale, c.zero_point, c.qmin, c.qmax, c.out_unsigned);
    cc::QuantParams params;
    params.scale = at::full({1}, c.scale);
    params.zero_point = at::full({1}, c.zero_point);
    params.qmin = c.qmin, params.qmax = c.qmax;
    const at::Tensor fake = cc::fake_quantize(at::tensor(at::ArrayRef<float>(x)), params);
    std::size_t wrong = 0, wrong_value = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const int q = cuda::quantize_element(x[i], c.scale, c.zero_point, static_cast<float>(c.qmin), static_cast<float>(c.qmax));
      if (q != expected[i] && wrong++ < 5) UNSCOPED_INFO("x = " << x[i] << ": " << q << ", the CPU " << expected[i]);
      if (!std::isnan(x[i]) && !same_bits((static_cast<float>(q) - c.zero_point) * c.scale, fake[static_cast<std::int64_t>(i)].item<float>()))
        ++wrong_value;
    }
    CHECK(wrong == 0);
    CHECK(wrong_value == 0);
  }
}

TEST_CASE("cuda quantization params: the device formulas give params_for_range's scale and zero-point bit for bit", "[cuda]") {
  // No device needed: symmetric_scale and asymmetric_params are what scale_from_absmax and
  // asymmetric_params_from_range run on the device, compiled for the host.
  const cc::QuantSpec asym = cc::parse_quant_spec("a8-per-tensor-dynamic-asym", cc::QuantRole::kActivation);
  const cc::QuantSpec sym = cc::parse_quant_spec("a8-per-tensor-dynamic-sym", cc::QuantRole::kActivation);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::pair<float, float>> ranges{{0.0f, 0.0f},   {-1.0f, 1.0f},  {-3.7f, 0.2f},    {0.5f, 9.0f},      {-9.0f, -0.5f},
                                              {-1e-12f, 1e-12f}, {-0.0f, 0.0f}, {-3e38f, 3e38f}, {-1e-30f, 250.0f}, {nan, 1.0f},
                                              {-1.0f, nan}};
  std::mt19937 rng(23);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-20, 20);
  for (int i = 0; i < 5000; ++i) {
    const float lo = -unit(rng) * std::ldexp(1.0f, exponent(rng)), hi = unit(rng) * std::ldexp(1.0f, exponent(rng));
    ranges.emplace_back(lo, hi);
  }
  std::size_t wrong = 0;
  for (const auto& [min, max] : ranges) {
    const cc::QuantParams want = cc::params_for_range(at::full({1}, min), at::full({1}, max), asym);
    const cuda::AffineParams got = cuda::asymmetric_params(min, max, 0.0f, 255.0f);
    const float want_scale = want.scale.item<float>(), want_zero = want.zero_point.item<float>();
    const bool ok = (same_bits(got.scale, want_scale) || (std::isnan(got.scale) && std::isnan(want_scale))) &&
                    (got.zero_point == want_zero || (std::isnan(got.zero_point) && std::isnan(want_zero)));
    if (!ok && wrong++ < 5)
      UNSCOPED_INFO("[" << min << ", " << max << "]: scale " << got.scale << " zero-point " << got.zero_point << ", params_for_range "
                        << want_scale << ", " << want_zero);
    if (std::isnan(min) || std::isnan(max)) continue;  // abs-max counts NaN instead (scale_from_absmax)
    const float absmax = std::max(std::abs(min), std::abs(max));
    const float want_sym = cc::params_for_range(at::full({1}, min), at::full({1}, max), sym).scale.item<float>();
    if (!same_bits(cuda::symmetric_scale(absmax, 127.0f), want_sym) && wrong++ < 5)
      UNSCOPED_INFO("|x| <= " << absmax << ": symmetric scale " << cuda::symmetric_scale(absmax, 127.0f) << ", params_for_range " << want_sym);
  }
  CHECK(wrong == 0);
}

TEST_CASE("cuda GEMM runners are shared per device and stream across threads", "[cuda]") {
  // No device needed: a runner touches CUDA only when the cuBLASLt path first runs, and
  // these stream handles are never used.
  const auto stream_a = reinterpret_cast<cuda::Stream>(std::uintptr_t{0x1000});
  const auto stream_b = reinterpret_cast<cuda::Stream>(std::uintptr_t{0x2000});
  cuda::Int8GemmRunner* from_another_thread = nullptr;
  std::thread([&] { from_another_thread = &cuda::shared_runner(0, stream_a); }).join();
  CHECK(&cuda::shared_runner(0, stream_a) == from_another_thread);
  CHECK(&cuda::shared_runner(0, stream_b) != from_another_thread);
  CHECK(&cuda::shared_runner(1, stream_a) != from_another_thread);
  CHECK(&cuda::shared_runner(1, stream_a) != &cuda::shared_runner(0, stream_b));
  cc::testing::expect_error([] { cuda::shared_runner(-1, nullptr); }, cc::ErrorKind::kInvalidArgument, {"device index"});
}

TEST_CASE("CUDA absmax matches the host maximum and counts NaN", "[cuda]") {
  if (!have_gpu()) return;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (std::int64_t n : {1, 7, 33, 1000, (1 << 20) + 3}) {
    INFO("n = " << n);
    std::vector<float> x(static_cast<std::size_t>(n));
    for (auto& v : x) v = normal(rng);
    x[static_cast<std::size_t>(n / 2)] = -1e4f;  // the largest magnitude is negative
    DeviceBuffer<float> dx(x.size()), dmax(1);
    DeviceBuffer<unsigned> dnan(1);
    dx.upload(x);
    cuda::absmax(dx.ptr, cuda::FloatType::kFloat32, n, dmax.ptr, dnan.ptr, nullptr);
    CHECK(dmax.download(1)[0] == 1e4f);
    CHECK(dnan.download(1)[0] == 0u);
    x[0] = std::numeric_limits<float>::quiet_NaN();
    dx.upload(x);
    cuda::absmax(dx.ptr, cuda::FloatType::kFloat32, n, dmax.ptr, dnan.ptr, nullptr);
    CHECK(dnan.download(1)[0] == 1u);
  }

  // Per row: rows of 4096 (one token each), every row's own maximum.
  const std::int64_t rows = 33, cols = 4096;
  std::vector<float> x(static_cast<std::size_t>(rows * cols));
  for (auto& v : x) v = normal(rng);
  std::vector<float> expected(static_cast<std::size_t>(rows), 0.0f);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      expected[static_cast<std::size_t>(r)] = std::max(expected[static_cast<std::size_t>(r)], std::abs(x[static_cast<std::size_t>(r * cols + c)]));
  DeviceBuffer<float> dx(x.size()), dmax(static_cast<std::size_t>(rows));
  DeviceBuffer<unsigned> dnan(1);
  dx.upload(x);
  cuda::absmax_per_row(dx.ptr, cuda::FloatType::kFloat32, rows, cols, dmax.ptr, dnan.ptr, nullptr);
  CHECK(dmax.download(static_cast<std::size_t>(rows)) == expected);
}

TEST_CASE("CUDA per-tensor quantization rounds half to even and saturates", "[cuda]") {
  if (!have_gpu()) return;
  // Halves on both sides of zero, values beyond both ends, and ordinary ones.
  const std::vector<float> x{0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 1000.0f, -1000.0f, 0.26f, -3.74f, 0.0f};
  const float scale = 1.0f, zero_point = 3.0f;
  DeviceBuffer<float> dx(x.size()), dscale(1), dzero(1);
  dx.upload(x);
  dscale.upload({scale});
  dzero.upload({zero_point});
  for (bool out_unsigned : {false, true}) {
    const int qmin = out_unsigned ? 0 : -128, qmax = out_unsigned ? 255 : 127;
    DeviceBuffer<std::uint8_t> dq(x.size());
    cuda::quantize_per_tensor(dx.ptr, cuda::FloatType::kFloat32, static_cast<std::int64_t>(x.size()), dscale.ptr, dzero.ptr, qmin, qmax, dq.ptr,
                              out_unsigned, nullptr);
    const std::vector<std::uint8_t> raw = dq.download(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      const long expected = std::min<long>(std::max<long>(std::lrint(x[i] / scale) + 3, qmin), qmax);  // lrint: half to even
      const long got = out_unsigned ? static_cast<long>(raw[i]) : static_cast<long>(static_cast<std::int8_t>(raw[i]));
      CHECK(got == expected);
    }
  }
  cc::testing::expect_error([&] { cuda::quantize_per_tensor(dx.ptr, cuda::FloatType::kFloat32, 1, dscale.ptr, dzero.ptr, 0, 300, dx.ptr, true, nullptr); },
                            cc::ErrorKind::kInvalidArgument, {"qmin, qmax"});
}

TEST_CASE("cuda quantize kernel gives the CPU's integers for huge, infinite and NaN inputs", "[cuda]") {
  if (!have_gpu()) return;
  // Before the clamp moved into float, x = +inf with zero-point 131 came out 0 (an int
  // overflow past the clamp) where the CPU gives 255.
  const std::vector<float> x = quantization_inputs();
  DeviceBuffer<float> dx(x.size()), dscale(1), dzero(1);
  dx.upload(x);
  for (const QuantCase& c : quantization_cases()) {
    INFO("scale " << c.scale << ", zero-point " << c.zero_point << ", [" << c.qmin << ", " << c.qmax << "]");
    dscale.upload({c.scale});
    dzero.upload({c.zero_point});
    DeviceBuffer<std::uint8_t> dq(x.size());
    cuda::quantize_per_tensor(dx.ptr, cuda::FloatType::kFloat32, static_cast<std::int64_t>(x.size()), dscale.ptr, dzero.ptr,
                              static_cast<int>(c.qmin), static_cast<int>(c.qmax), dq.ptr, c.out_unsigned, nullptr);
    const std::vector<std::uint8_t> raw = dq.download(x.size());
    const std::vector<long> expected = cpu_quantized(x, c.scale, c.zero_point, c.qmin, c.qmax, c.out_unsigned);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const long got = c.out_unsigned ? static_cast<long>(raw[i]) : static_cast<long>(static_cast<std::int8_t>(raw[i]));
      if (got != expected[i] && wrong++ < 5) UNSCOPED_INFO("x = " << x[i] << ": " << got << ", the CPU " << expected[i]);
    }
    CHECK(wrong == 0);
  }
}

TEST_CASE("cuda asymmetric params from a device range equal params_for_range on the CPU bit for bit", "[cuda]") {
  if (!have_gpu()) return;
  // Through ATen on CUDA the scale divided by 255 as a multiplication by 1/255, one ulp
  // off the CPU's division for many ranges, which moved some inputs to the next integer.
  const cc::QuantSpec asym = cc::parse_quant_spec("a8-per-tensor-dynamic-asym", cc::QuantRole::kActivation);
  std::mt19937 rng(29);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-20, 20);
  std::vector<float> mins{0.0f, -1.0f, 0.5f, -9.0f, std::numeric_limits<float>::quiet_NaN()}, maxs{0.0f, 1.0f, 9.0f, -0.5f, 1.0f};
  for (int i = 0; i < 2000; ++i) {
    mins.push_back(-unit(rng) * std::ldexp(1.0f, exponent(rng)));
    maxs.push_back(unit(rng) * std::ldexp(1.0f, exponent(rng)));
  }
  DeviceBuffer<float> dmin(mins.size()), dmax(maxs.size()), dscale(mins.size()), dzero(mins.size());
  dmin.upload(mins);
  dmax.upload(maxs);
  for (std::size_t i = 0; i < mins.size(); ++i)
    cuda::asymmetric_params_from_range(dmin.ptr + i, dmax.ptr + i, 0, 255, dscale.ptr + i, dzero.ptr + i, nullptr);
  const std::vector<float> scales = dscale.download(mins.size()), zeros = dzero.download(mins.size());
  const cc::QuantParams want = cc::params_for_range(at::tensor(at::ArrayRef<float>(mins)), at::tensor(at::ArrayRef<float>(maxs)), asym);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < mins.size(); ++i) {
    const auto j = static_cast<std::int64_t>(i);
    const float want_scale = want.scale[j].item<float>(), want_zero = want.zero_point[j].item<float>();
    const bool ok = (same_bits(scales[i], want_scale) || (std::isnan(scales[i]) && std::isnan(want_scale))) &&
                    (zeros[i] == want_zero || (std::isnan(zeros[i]) && std::isnan(want_zero)));
    if (!ok && wrong++ < 5)
      UNSCOPED_INFO("[" << mins[i] << ", " << maxs[i] << "]: " << scales[i] << ", " << zeros[i] << " vs " << want_scale << ", " << want_zero);
  }
  CHECK(wrong == 0);
}

namespace {

// One GEMM problem on the host: operands, scales and the float64 reference.
struct GemmCase {
  std::int64_t m, n, k;
  bool asymmetric, per_channel, with_bias;
  std::vector<std::uint8_t> a;  // int8 bit patterns, or uint8 when asymmetric
  std::vector<std::int8_t> w;
  std::vector<float> w_scales, bias;
  float a_scale = 0.0173f, a_zero_point = 0.0f;

  double expected(std::int64_t row, std::int64_t col) const {
    std::int64_t sum = 0;
    for (std::int64_t i = 0; i < k; ++i) {
      const std::uint8_t raw = a[static_cast<std::size_t>(row * k + i)];
      const std::int64_t av = asymmetric ? static_cast<std::int64_t>(raw) - static_cast<std::int64_t>(a_zero_point)
                                         : static_cast<std::int64_t>(static_cast<std::int8_t>(raw));
      sum += av * w[static_cast<std::size_t>(col * k + i)];
    }
    double v = static_cast<double>(a_scale) * static_cast<double>(w_scales[per_channel ? static_cast<std::size_t>(col) : 0]) *
               static_cast<double>(sum);
    if (with_bias) v += bias[static_cast<std::size_t>(col)];
    return v;
  }
};

GemmCase make_gemm_case(std::int64_t m, std::int64_t n, std::int64_t k, bool asymmetric, bool per_channel, bool with_bias, unsigned seed) {
  std::mt19937 rng(seed);
  GemmCase c{m, n, k, asymmetric, per_channel, with_bias, {}, {}, {}, {}};
  std::uniform_int_distribution<int> byte(0, 255), weight(-127, 127);
  std::uniform_real_distribution<float> scale(0.001f, 0.02f), offset(-1.0f, 1.0f);
  c.a.resize(static_cast<std::size_t>(m * k));
  for (auto& v : c.a) v = static_cast<std::uint8_t>(byte(rng));
  // Saturated corners too: the largest products must not overflow the int32 sums.
  c.a[0] = asymmetric ? 255 : 0x80;  // 255, or -128
  c.w.resize(static_cast<std::size_t>(n * k));
  for (auto& v : c.w) v = static_cast<std::int8_t>(weight(rng));
  c.w[0] = -128;
  c.w_scales.resize(per_channel ? static_cast<std::size_t>(n) : 1);
  for (auto& v : c.w_scales) v = scale(rng);
  c.bias.resize(static_cast<std::size_t>(n));
  for (auto& v : c.bias) v = offset(rng);
  if (asymmetric) c.a_zero_point = 131.0f;
  return c;
}

// A float16 or bfloat16 bit pattern as a float, decoded here rather than by the CUDA
// headers the test would otherwise compare the kernel against.
float sixteen_bit_to_float(std::uint16_t raw, cuda::FloatType type) {
  if (type == cuda::FloatType::kBFloat16) {
    const std::uint32_t bits = static_cast<std::uint32_t>(raw) << 16;
    float v = 0.0f;
    std::memcpy(&v, &bits, 4);
    return v;
  }
  const int exponent = (raw >> 10) & 0x1f, mantissa = raw & 0x3ff;
  const float sign = (raw & 0x8000) != 0 ? -1.0f : 1.0f;
  if (exponent == 0x1f) return mantissa != 0 ? std::numeric_limits<float>::quiet_NaN() : sign * std::numeric_limits<float>::infinity();
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -24);
  return sign * std::ldexp(static_cast<float>(mantissa + 1024), exponent - 25);
}

// Runs `c` on `backend` with output `type` into a poisoned buffer (all bits set: NaN in
// every float type), so an element the kernel never writes shows up as a NaN.
// `offset` bytes into their buffers, a and w are only as aligned as the offset (cuBLASLt
// must then be told, or its heuristic may pick vector loads that fault). With `stream`,
// the GEMM runs there and the caller's runner is left with work queued (the caller syncs).
void check_gemm(cuda::Int8GemmRunner& runner, const GemmCase& c, cuda::GemmBackend backend, cuda::FloatType type, std::size_t offset = 0,
                cuda::Stream stream = nullptr) {
  DeviceBuffer<std::uint8_t> da_buffer(c.a.size() + offset);
  DeviceBuffer<std::uint8_t> dw_buffer(c.w.size() + offset);
  DeviceBuffer<float> dw_scales(c.w_scales.size()), dbias(c.bias.size()), dscale(1), dzero(1);
  DeviceBuffer<std::int32_t> dsums(static_cast<std::size_t>(c.n));
  std::uint8_t* da_ptr = da_buffer.ptr + offset;
  std::int8_t* dw_ptr = reinterpret_cast<std::int8_t*>(dw_buffer.ptr + offset);
  REQUIRE(cudaMemcpy(da_ptr, c.a.data(), c.a.size(), cudaMemcpyHostToDevice) == cudaSuccess);
  REQUIRE(cudaMemcpy(dw_ptr, c.w.data(), c.w.size(), cudaMemcpyHostToDevice) == cudaSuccess);
  dw_scales.upload(c.w_scales);
  dbias.upload(c.bias);
  dscale.upload({c.a_scale});
  dzero.upload({c.a_zero_point});
  const std::size_t outputs = static_cast<std::size_t>(c.m * c.n);
  const std::size_t out_bytes = type == cuda::FloatType::kFloat32 ? 4 : 2;
  DeviceBuffer<std::uint8_t> dy(outputs * out_bytes);
  REQUIRE(cudaMemset(dy.ptr, 0xff, outputs * out_bytes) == cudaSuccess);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);  // the uploads are done before another stream reads them

  cuda::GemmS8S8 p;
  p.m = c.m, p.n = c.n, p.k = c.k;
  p.a = da_ptr;
  p.a_unsigned = c.asymmetric;
  p.a_scale = dscale.ptr;
  p.a_zero_point = c.asymmetric ? dzero.ptr : nullptr;
  p.w = dw_ptr;
  p.w_scales = dw_scales.ptr;
  p.w_per_channel = c.per_channel;
  if (c.asymmetric) {
    cuda::weight_row_sums(dw_ptr, c.n, c.k, dsums.ptr, stream);
    p.w_row_sums = dsums.ptr;
  }
  p.bias = c.with_bias ? dbias.ptr : nullptr;
  p.y = dy.ptr;
  p.y_type = type;
  runner.run(p, backend, stream);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);

  const std::vector<std::uint8_t> bytes = dy.download(outputs * out_bytes);
  // float32 keeps ~7 digits of a value built from exact int32 sums; the 16-bit outputs
  // round once at the end (2^-11 for float16, 2^-8 for bfloat16).
  const double relative = type == cuda::FloatType::kFloat32 ? 1e-5 : (type == cuda::FloatType::kFloat16 ? 1e-3 : 8e-3);
  std::size_t bad = 0;
  for (std::int64_t row = 0; row < c.m; ++row)
    for (std::int64_t col = 0; col < c.n; ++col) {
      const std::size_t i = static_cast<std::size_t>(row * c.n + col);
      float got = 0.0f;
      if (type == cuda::FloatType::kFloat32) {
        std::memcpy(&got, bytes.data() + i * 4, 4);
      } else {
        std::uint16_t raw = 0;
        std::memcpy(&raw, bytes.data() + i * 2, 2);
        got = sixteen_bit_to_float(raw, type);
      }
      const double want = c.expected(row, col);
      if (!std::isfinite(got) || std::abs(got - want) > relative * std::abs(want) + 1e-4) {
        if (bad++ < 5) UNSCOPED_INFO("y[" << row << ", " << col << "] = " << got << ", expected " << want);
      }
    }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("CUDA INT8 GEMM matches an int64 reference on awkward sizes, both backends", "[cuda]") {
  if (!have_gpu()) return;
  cuda::Int8GemmRunner runner;
  unsigned seed = 11;
  // k: below one 64-byte stage, a stage and a 16-byte tail, and a LLaMA width; n: not a
  // multiple of the 128-wide tile; m: the row counts (a decode row to a full tile set).
  for (std::int64_t m : {1, 33, 100, 222, 512})
    for (auto [n, k] : {std::pair<std::int64_t, std::int64_t>{72, 48}, {200, 208}, {1000, 4096}})
      for (bool asymmetric : {false, true})
        for (bool per_channel : {false, true}) {
          const GemmCase c = make_gemm_case(m, n, k, asymmetric, per_channel, /*with_bias=*/per_channel, seed++);
          INFO("m " << m << ", n " << n << ", k " << k << (asymmetric ? ", uint8 + zero-point" : ", int8") << (per_channel ? ", per-channel + bias" : ", per-tensor"));
          check_gemm(runner, c, cuda::GemmBackend::kTensorCore, cuda::FloatType::kFloat32);
          if (!asymmetric) check_gemm(runner, c, cuda::GemmBackend::kCublasLt, cuda::FloatType::kFloat32);
          check_gemm(runner, c, cuda::GemmBackend::kAuto, m == 33 ? cuda::FloatType::kFloat16 : cuda::FloatType::kBFloat16);
        }
}

TEST_CASE("cuda cuBLASLt GEMM on operands aligned to 4 bytes only", "[cuda]") {
  if (!have_gpu()) return;
  // A row-offset view of a tensor: a and w 4 bytes past a 256-byte boundary. The plan
  // tells cuBLASLt so (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*), else its default of 256 lets
  // the heuristic pick an algorithm that needs more.
  cuda::Int8GemmRunner runner;
  for (std::int64_t m : {1, 33, 64}) {
    const GemmCase c = make_gemm_case(m, 200, 212, false, true, true, 41 + static_cast<unsigned>(m));
    INFO("m " << m);
    for (std::size_t offset : {4, 8, 12}) check_gemm(runner, c, cuda::GemmBackend::kCublasLt, cuda::FloatType::kFloat32, offset);
  }
}

TEST_CASE("cuda GEMM runner across streams and destroyed with work queued gives right results", "[cuda]") {
  if (!have_gpu()) return;
  cudaStream_t first = nullptr, second = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&first, cudaStreamNonBlocking) == cudaSuccess);
  REQUIRE(cudaStreamCreateWithFlags(&second, cudaStreamNonBlocking) == cudaSuccess);
  {
    // One runner on two streams: the second, larger problem frees and regrows the int32
    // buffer the first stream's epilogue may still read; the runner orders it.
    cuda::Int8GemmRunner runner;
    check_gemm(runner, make_gemm_case(64, 1000, 4096, false, false, false, 51), cuda::GemmBackend::kCublasLt, cuda::FloatType::kFloat32, 0, first);
    check_gemm(runner, make_gemm_case(64, 2000, 1024, false, true, true, 52), cuda::GemmBackend::kCublasLt, cuda::FloatType::kFloat32, 0, second);
    check_gemm(runner, make_gemm_case(33, 72, 48, false, true, false, 53), cuda::GemmBackend::kCublasLt, cuda::FloatType::kBFloat16, 0, first);
  }
  // Destroyed right after queuing: the buffer is freed in stream order, not under the
  // running epilogue (compute-sanitizer's memcheck is the sharper judge of this one).
  const GemmCase c = make_gemm_case(64, 4000, 4096, false, false, false, 54);
  DeviceBuffer<std::int8_t> da(c.a.size()), dw(c.w.size());
  DeviceBuffer<float> dscale(1), dw_scales(1), dy(static_cast<std::size_t>(c.m * c.n));
  da.upload(std::vector<std::int8_t>(c.a.begin(), c.a.end()));
  dw.upload(c.w);
  dscale.upload({c.a_scale});
  dw_scales.upload(c.w_scales);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  cuda::GemmS8S8 p;
  p.m = c.m, p.n = c.n, p.k = c.k;
  p.a = da.ptr, p.w = dw.ptr, p.a_scale = dscale.ptr, p.w_scales = dw_scales.ptr, p.y = dy.ptr;
  {
    cuda::Int8GemmRunner runner;
    runner.run(p, cuda::GemmBackend::kCublasLt, first);
  }
  {
    // A new stream-ordered allocation of the same size on the other stream may get the
    // freed block: it must not be handed out before the first stream is done with it.
    cuda::Int8GemmRunner other;
    DeviceBuffer<float> dy2(static_cast<std::size_t>(c.m * c.n));
    cuda::GemmS8S8 q = p;
    q.y = dy2.ptr;
    other.run(q, cuda::GemmBackend::kCublasLt, second);
    REQUIRE(cudaStreamSynchronize(second) == cudaSuccess);
  }
  REQUIRE(cudaStreamSynchronize(first) == cudaSuccess);
  const std::vector<float> y = dy.download(static_cast<std::size_t>(c.m * c.n));
  std::size_t bad = 0;
  for (std::int64_t row = 0; row < c.m; ++row)
    for (std::int64_t col = 0; col < c.n; ++col) {
      const double want = c.expected(row, col), got = y[static_cast<std::size_t>(row * c.n + col)];
      if (!(std::abs(got - want) <= 1e-5 * std::abs(want) + 1e-4)) ++bad;
    }
  CHECK(bad == 0);
  CHECK(cudaStreamDestroy(first) == cudaSuccess);
  CHECK(cudaStreamDestroy(second) == cudaSuccess);
}

TEST_CASE("CUDA weight row sums and the absmax scale feed the GEMM without the host", "[cuda]") {
  if (!have_gpu()) return;
  const std::vector<std::int8_t> w{-128, 127, 5, 0, 1, 1, 1, -3};  // two rows of four
  DeviceBuffer<std::int8_t> dw(w.size());
  DeviceBuffer<std::int32_t> dsums(2);
  dw.upload(w);
  cuda::weight_row_sums(dw.ptr, 2, 4, dsums.ptr, nullptr);
  CHECK(dsums.download(2) == std::vector<std::int32_t>{4, 0});

  DeviceBuffer<float> dmax(1), dscale(1);
  DeviceBuffer<unsigned> dnans(1);
  dnans.upload({0u});
  dmax.upload({254.0f});
  cuda::scale_from_absmax(dmax.ptr, dnans.ptr, 127, dscale.ptr, nullptr);
  CHECK(dscale.download(1)[0] == 2.0f);
  dmax.upload({0.0f});  // an all-zero tensor: params_for_range's floor, not a division by zero
  cuda::scale_from_absmax(dmax.ptr, nullptr, 127, dscale.ptr, nullptr);
  CHECK(dscale.download(1)[0] == 1e-10f);
  dnans.upload({2u});  // NaN in the tensor: a NaN scale, so the NaN reaches the output
  cuda::scale_from_absmax(dmax.ptr, dnans.ptr, 127, dscale.ptr, nullptr);
  CHECK(std::isnan(dscale.download(1)[0]));
}

TEST_CASE("CUDA INT8 GEMM preconditions are named before anything runs", "[cuda]") {
  // No device needed: the checks come before any CUDA call.
  alignas(16) static std::int8_t a[64 * 64], w[64 * 64];
  static float scale = 1.0f, y[64 * 64];
  static std::int32_t sums[64];
  cuda::GemmS8S8 p;
  p.m = 4, p.n = 8, p.k = 64;
  p.a = a, p.w = w, p.y = y, p.a_scale = &scale, p.w_scales = &scale;
  CHECK(cuda::gemm_unsupported_reason(p, cuda::GemmBackend::kTensorCore) == nullptr);
  CHECK(cuda::gemm_unsupported_reason(p, cuda::GemmBackend::kCublasLt) == nullptr);

  cuda::Int8GemmRunner runner;
  cuda::GemmS8S8 bad = p;
  bad.k = 40;
  cc::testing::expect_error([&] { runner.run(bad, cuda::GemmBackend::kTensorCore, nullptr); }, cc::ErrorKind::kInvalidArgument,
                            {"k must be a multiple of 16"});
  bad = p;
  bad.a = a + 1;
  cc::testing::expect_error([&] { runner.run(bad, cuda::GemmBackend::kTensorCore, nullptr); }, cc::ErrorKind::kInvalidArgument,
                            {"16-byte aligned"});
  bad = p;
  bad.a_unsigned = true;
  cc::testing::expect_error([&] { runner.run(bad, cuda::GemmBackend::kTensorCore, nullptr); }, cc::ErrorKind::kInvalidArgument,
                            {"a_zero_point and w_row_sums"});
  bad.a_zero_point = &scale;
  bad.w_row_sums = sums;
  cc::testing::expect_error([&] { runner.run(bad, cuda::GemmBackend::kCublasLt, nullptr); }, cc::ErrorKind::kInvalidArgument,
                            {"no uint8 x int8"});
  // kAuto never picks a backend that cannot run the problem.
  CHECK(runner.pick(bad) == cuda::GemmBackend::kTensorCore);
  bad = p;
  bad.n = 6;
  CHECK(runner.pick(bad) == cuda::GemmBackend::kTensorCore);
  bad = p;
  bad.w_scales = nullptr;
  cc::testing::expect_error([&] { runner.run(bad, cuda::GemmBackend::kAuto, nullptr); }, cc::ErrorKind::kInvalidArgument, {"w_scales"});

  // K: the int32 sums must stay exact. uint8 x int8 products reach 255 * 128 = 32640 in
  // magnitude, so K = 65793 is the last whose sums fit; int8 x int8 ones 128 * 128.
  const std::int64_t int32_max = std::numeric_limits<std::int32_t>::max();
  REQUIRE(std::int64_t{255} * 128 * 65793 <= int32_max);
  REQUIRE(std::int64_t{255} * 128 * 65794 > int32_max);
  REQUIRE(std::int64_t{128} * 128 * 131071 <= int32_max);
  REQUIRE(std::int64_t{128} * 128 * 131072 > int32_max);
  cuda::GemmS8S8 asym = p;
  asym.a_unsigned = true, asym.a_zero_point = &scale, asym.w_row_sums = sums;
  asym.k = 65792;  // the largest multiple of 16 within the bound
  CHECK(cuda::gemm_unsupported_reason(asym, cuda::GemmBackend::kTensorCore) == nullptr);
  asym.k = 65808;
  for (auto backend : {cuda::GemmBackend::kTensorCore, cuda::GemmBackend::kAuto})
    cc::testing::expect_error([&] { runner.run(asym, backend, nullptr); }, cc::ErrorKind::kInvalidArgument, {"k is above 65793", "overflow"});
  cuda::GemmS8S8 sym = p;
  sym.k = 65808;  // fine for int8 activations
  CHECK(cuda::gemm_unsupported_reason(sym, cuda::GemmBackend::kTensorCore) == nullptr);
  sym.k = 131068;
  CHECK(cuda::gemm_unsupported_reason(sym, cuda::GemmBackend::kCublasLt) == nullptr);
  sym.k = 131072;
  for (auto backend : {cuda::GemmBackend::kTensorCore, cuda::GemmBackend::kCublasLt, cuda::GemmBackend::kAuto})
    cc::testing::expect_error([&] { runner.run(sym, backend, nullptr); }, cc::ErrorKind::kInvalidArgument, {"k is above 131071", "overflow"});
}

TEST_CASE("linking the CUDA component registers its INT8 backend, with nothing to call", "[kernels]") {
  // Runs without a GPU: the registration is the library's static initializer.
  CHECK(cc::kernels::has_int8_linear_backend(c10::DeviceType::CUDA));
  CHECK_FALSE(cc::kernels::has_int8_linear_backend(c10::DeviceType::XLA));
}

TEST_CASE("a W8A8 layer on CUDA computes what it computes on the CPU", "[cuda]") {
  if (!have_gpu()) return;
  if (!at::hasCUDA()) {
    cc::testing::skip_without_hardware("this LibTorch has no CUDA: the ops layer needs CUDA tensors");
    return;
  }
  // Linking cushioncache::cuda registered the backend: nothing to call.
  REQUIRE(cc::kernels::has_int8_linear_backend(c10::DeviceType::CUDA));
  at::manual_seed(3);
  const cc::QuantSpec weight_spec = cc::parse_quant_spec("w8-per-channel-sym", cc::QuantRole::kWeight);
  at::Tensor w = at::randn({96, 160}) * 0.05;
  w = cc::fake_quantize(w, cc::params_for_range(w.amin(1, true), w.amax(1, true), weight_spec));
  const at::Tensor bias = at::randn({96});
  const at::Tensor x = at::randn({3, 37, 160});
  for (const char* input_name : {"a8-per-tensor-dynamic-sym", "a8-per-tensor-static-asym", "a8-per-tensor-dynamic-asym",
                                 "a8-per-token-dynamic-sym", "a8-per-token-dynamic-asym"}) {
    INFO(input_name);
    const cc::QuantSpec input_spec = cc::parse_quant_spec(input_name, cc::QuantRole::kActivation);
    std::optional<cc::QuantParams> static_input;
    if (input_spec.mode == cc::RangeMode::kStatic) static_input = cc::params_for_range(x.min().reshape({1}), x.max().reshape({1}), input_spec);
    const cc::Int8LinearKernel on_cpu(w, bias, weight_spec, input_spec, static_input);
    const cc::Int8LinearKernel on_gpu(w.cuda(), bias.cuda(), weight_spec, input_spec, static_input);
    const at::Tensor expected = on_cpu.forward(x);
    const at::Tensor got = on_gpu.forward(x.cuda()).cpu();
    CHECK(got.sizes() == expected.sizes());
    CHECK(cc::testing::max_abs_diff(got, expected) <= 1e-4 * expected.abs().max().item<double>());
    // bfloat16 in, bfloat16 out: the same up to bfloat16's rounding of input and output.
    const at::Tensor got_bf16 = on_gpu.forward(x.cuda().to(at::kBFloat16)).cpu().to(at::kFloat);
    CHECK(cc::testing::max_abs_diff(got_bf16, on_cpu.forward(x.to(at::kBFloat16).to(at::kFloat))) <= 2e-2 * expected.abs().max().item<double>());
  }
  // A NaN in the input comes out as NaN, not as a finite wrong value.
  const cc::QuantSpec dynamic = cc::parse_quant_spec("a8-per-tensor-dynamic-sym", cc::QuantRole::kActivation);
  const cc::Int8LinearKernel on_gpu(w.cuda(), bias.cuda(), weight_spec, dynamic, std::nullopt);
  at::Tensor poisoned = x.clone();
  poisoned[0][5][7] = std::numeric_limits<float>::quiet_NaN();
  CHECK(at::isnan(on_gpu.forward(poisoned.cuda())[0]).all().item<bool>());
}
