// The CUDA quantization kernels against host references: abs-max (whole tensor and per
// row, NaN counted), and per-tensor quantization with round half to even. Built wherever
// nvcc is; run only where a GPU is (skipped otherwise, also in CI).
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "cushioncache/kernels/cuda/quantize_kernels.h"
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

}  // namespace

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
