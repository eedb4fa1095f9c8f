// The CPU INT8 GEMM against an exact reference (int64 accumulation, float64 epilogue) on
// awkward sizes, symmetric and asymmetric activations, per-tensor and per-channel weight
// scales, with and without bias; outputs are poisoned with NaN first so an element the
// kernel never writes fails the comparison.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "cushioncache/kernels/int8_gemm.h"
#include "support/test_support.h"

// After every header that may bring in glog (through ATen): glog defines CHECK too, and
// the definition that comes last wins.
#include <catch2/catch.hpp>

namespace cc = cushioncache;
namespace ck = cushioncache::kernels;

namespace {

struct Case {
  std::int64_t m, n, k;
  bool a_unsigned, per_channel, bias;
};

void check_case(const Case& c, std::mt19937& rng) {
  std::uniform_int_distribution<int> s8(-128, 127), u8(0, 255), zp(0, 255);
  std::uniform_real_distribution<float> scale(1e-3f, 5e-2f), bias(-2.0f, 2.0f);
  std::vector<std::int8_t> a_s(static_cast<std::size_t>(c.m * c.k)), w(static_cast<std::size_t>(c.n * c.k));
  std::vector<std::uint8_t> a_u(a_s.size());
  for (auto& v : a_s) v = static_cast<std::int8_t>(s8(rng));
  for (auto& v : a_u) v = static_cast<std::uint8_t>(u8(rng));
  for (auto& v : w) v = static_cast<std::int8_t>(s8(rng));
  std::vector<float> w_scales(static_cast<std::size_t>(c.per_channel ? c.n : 1)), b(static_cast<std::size_t>(c.n));
  for (auto& v : w_scales) v = scale(rng);
  for (auto& v : b) v = bias(rng);
  std::vector<float> y(static_cast<std::size_t>(c.m * c.n), std::numeric_limits<float>::quiet_NaN());

  ck::Int8Gemm p;
  p.m = c.m, p.n = c.n, p.k = c.k;
  p.a_unsigned = c.a_unsigned;
  p.a = c.a_unsigned ? static_cast<const void*>(a_u.data()) : static_cast<const void*>(a_s.data());
  p.a_zero_point = c.a_unsigned ? zp(rng) : 0;
  p.a_scale = scale(rng);
  p.w = w.data();
  p.w_scales = w_scales.data();
  p.w_per_channel = c.per_channel;
  p.bias = c.bias ? b.data() : nullptr;
  p.y = y.data();
  ck::int8_gemm_cpu(p);

  double worst = 0;
  for (std::int64_t i = 0; i < c.m; ++i)
    for (std::int64_t j = 0; j < c.n; ++j) {
      std::int64_t acc = 0;
      for (std::int64_t l = 0; l < c.k; ++l) {
        const std::int64_t a = c.a_unsigned ? a_u[i * c.k + l] : a_s[i * c.k + l];
        acc += (a - p.a_zero_point) * w[j * c.k + l];
      }
      const double expected = static_cast<double>(p.a_scale) * w_scales[c.per_channel ? j : 0] * static_cast<double>(acc) +
                              (c.bias ? b[j] : 0.0);
      const double got = y[i * c.n + j];
      // One float32 multiply of an exact int32 sum, one bias add: a few ulps of the terms.
      const double tolerance = 1e-6 * (std::abs(static_cast<double>(p.a_scale) * w_scales[c.per_channel ? j : 0] * acc) + 2.0) ;
      if (!(std::abs(got - expected) <= tolerance)) {
        FAIL_CHECK("m=" << c.m << " n=" << c.n << " k=" << c.k << " at (" << i << ", " << j << "): " << got << " vs " << expected);
        return;
      }
      worst = std::max(worst, std::abs(got - expected));
    }
  CHECK(worst < 1e-3);
}

}  // namespace

TEST_CASE("int8 gemm matches an exact reference on awkward sizes", "[kernels]") {
  if (!ck::cpu_int8_gemm_available()) {
    cc::testing::skip_test("this build has no oneDNN (install libdnnl-dev and reconfigure)");
    return;
  }
  std::mt19937 rng(7);
  for (std::int64_t m : {1, 33, 100, 222, 512})
    for (auto [n, k] : {std::pair<std::int64_t, std::int64_t>{40, 72}, {129, 200}, {333, 1000}})
      for (bool a_unsigned : {false, true})
        for (bool per_channel : {false, true}) {
          INFO("m=" << m << " n=" << n << " k=" << k << " unsigned=" << a_unsigned << " per_channel=" << per_channel);
          check_case({m, n, k, a_unsigned, per_channel, /*bias=*/(m + n) % 2 == 0}, rng);
        }
}

TEST_CASE("int8 gemm refuses bad problems naming the field", "[kernels]") {
  if (!ck::cpu_int8_gemm_available()) {
    cc::testing::skip_test("this build has no oneDNN (install libdnnl-dev and reconfigure)");
    return;
  }
  std::vector<std::int8_t> a(4, 1), w(4, 1);
  std::vector<float> scales{0.1f}, y(4);
  ck::Int8Gemm p;
  p.m = 2, p.n = 2, p.k = 2;
  p.a = a.data(), p.w = w.data(), p.w_scales = scales.data(), p.y = y.data();
  ck::int8_gemm_cpu(p);
  CHECK(y[0] == Approx(0.2f));  // 0.1 * 0.1 * (1 * 1 + 1 * 1)

  ck::Int8Gemm bad = p;
  bad.k = 0;
  cc::testing::expect_error([&] { ck::int8_gemm_cpu(bad); }, cc::ErrorKind::kInvalidArgument, {"k=0"});
  bad = p;
  bad.w_scales = nullptr;
  cc::testing::expect_error([&] { ck::int8_gemm_cpu(bad); }, cc::ErrorKind::kInvalidArgument, {"w_scales"});
  bad = p;
  bad.a_zero_point = 3;  // int8 activations are symmetric
  cc::testing::expect_error([&] { ck::int8_gemm_cpu(bad); }, cc::ErrorKind::kInvalidArgument, {"a_zero_point", "symmetric"});
  bad = p;
  bad.a_scale = std::numeric_limits<float>::quiet_NaN();
  cc::testing::expect_error([&] { ck::int8_gemm_cpu(bad); }, cc::ErrorKind::kInvalidArgument, {"a_scale"});
}
