#include "cushioncache/kernels/int8_gemm.h"

#include <cmath>
#include <map>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "cushioncache/core/error.h"

#if defined(CC_HAVE_ONEDNN)
#include <oneapi/dnnl/dnnl.hpp>
#endif
#if defined(CC_ONEDNN_ISOLATED)
#include "cushioncache/kernels/onednn_isolated.h"  // beside a LibTorch with its own oneDNN
#endif

namespace cushioncache::kernels {
namespace {

void check_problem(const Int8Gemm& p) {
  if (p.m <= 0 || p.n <= 0 || p.k <= 0)
    throw_error(ErrorKind::kInvalidArgument, "int8 gemm: sizes m={}, n={}, k={} must be positive", p.m, p.n, p.k);
  if (p.a == nullptr || p.w == nullptr || p.w_scales == nullptr || p.y == nullptr)
    throw_error(ErrorKind::kInvalidArgument, "int8 gemm: {} is null",
                p.a == nullptr ? "a" : p.w == nullptr ? "w" : p.w_scales == nullptr ? "w_scales" : "y");
  if (!p.a_unsigned && p.a_zero_point != 0)
    throw_error(ErrorKind::kInvalidArgument, "int8 gemm: a_zero_point {} given for int8 (symmetric) activations", p.a_zero_point);
  if (p.a_zero_point < 0 || p.a_zero_point > 255)
    throw_error(ErrorKind::kInvalidArgument, "int8 gemm: a_zero_point {} is outside 0..255", p.a_zero_point);
  if (p.a_rows_per_scale < 0) throw_error(ErrorKind::kInvalidArgument, "int8 gemm: a_rows_per_scale {} is negative", p.a_rows_per_scale);
  if (p.a_rows_per_scale == 0) {
    if (!std::isfinite(p.a_scale) || p.a_scale <= 0)
      throw_error(ErrorKind::kInvalidArgument, "int8 gemm: a_scale {} is not a positive number", p.a_scale);
  } else {
    if (p.a_scales == nullptr) throw_error(ErrorKind::kInvalidArgument, "int8 gemm: a_scales is null with a_rows_per_scale {}", p.a_rows_per_scale);
    if (p.a_unsigned && (p.a_zero_points == nullptr || p.w_row_sums == nullptr))
      throw_error(ErrorKind::kInvalidArgument, "int8 gemm: uint8 activations with vector scales need a_zero_points and w_row_sums");
    const std::int64_t groups = (p.m + p.a_rows_per_scale - 1) / p.a_rows_per_scale;
    for (std::int64_t g = 0; g < groups; ++g) {
      if (!std::isfinite(p.a_scales[g]) || p.a_scales[g] <= 0)
        throw_error(ErrorKind::kInvalidArgument, "int8 gemm: a_scales[{}] = {} is not a positive number", g, p.a_scales[g]);
      if (p.a_unsigned && (p.a_zero_points[g] < 0 || p.a_zero_points[g] > 255))
        throw_error(ErrorKind::kInvalidArgument, "int8 gemm: a_zero_points[{}] = {} is outside 0..255", g, p.a_zero_points[g]);
    }
  }
  const std::int64_t scales = p.w_per_channel ? p.n : 1;
  for (std::int64_t i = 0; i < scales; ++i)
    if (!std::isfinite(p.w_scales[i]) || p.w_scales[i] <= 0)
      throw_error(ErrorKind::kInvalidArgument, "int8 gemm: w_scales[{}] = {} is not a positive number", i, p.w_scales[i]);
}

#if defined(CC_HAVE_ONEDNN)

// m, n, k, a_unsigned, per_channel, int32 output (vector activation scales)
using Shape = std::tuple<std::int64_t, std::int64_t, std::int64_t, bool, bool, bool>;

// Building a oneDNN primitive costs far more than running a small one, and a model
// calls the same few shapes over and over: one cache per thread (primitives are not
// shared across threads while executing).
struct Backend {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::map<Shape, dnnl::matmul> primitives;

  const dnnl::matmul& primitive(const Int8Gemm& p) {
    const bool int32_out = p.a_rows_per_scale > 0;
    const Shape shape{p.m, p.n, p.k, p.a_unsigned, p.w_per_channel, int32_out};
    auto it = primitives.find(shape);
    if (it != primitives.end()) return it->second;
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const dnnl::memory::desc a_md({p.m, p.k}, p.a_unsigned ? dt::u8 : dt::s8, tag::ab);
    const dnnl::memory::desc w_md({p.k, p.n}, dt::s8, tag::ba);  // w is [n, k] row-major
    const dnnl::memory::desc y_md({p.m, p.n}, int32_out ? dt::s32 : dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    if (!int32_out) {
      attr.set_output_scales(p.w_per_channel ? 1 << 1 : 0, {DNNL_RUNTIME_F32_VAL});
      if (p.a_unsigned) attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
    }
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, w_md, y_md), attr, engine);
    return primitives.emplace(shape, dnnl::matmul(pd)).first->second;
  }
};

// Vector activation scales: the int32 sums from oneDNN, then the epilogue here, in the
// CUDA kernels' arithmetic (int8_gemm_kernels.cu's Dequantizer): the zero-point
// correction in int32 (exact), one float scale multiplication, the bias.
void int8_gemm_cpu_vector_scales(Backend& backend, const Int8Gemm& p) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  std::vector<std::int32_t> sums(static_cast<std::size_t>(p.m * p.n));
  try {
    const dnnl::matmul& matmul = backend.primitive(p);
    const dnnl::engine& e = backend.engine;
    matmul.execute(backend.stream,
                   {{DNNL_ARG_SRC, dnnl::memory({{p.m, p.k}, p.a_unsigned ? dt::u8 : dt::s8, tag::ab}, e, const_cast<void*>(p.a))},
                    {DNNL_ARG_WEIGHTS, dnnl::memory({{p.k, p.n}, dt::s8, tag::ba}, e, const_cast<std::int8_t*>(p.w))},
                    {DNNL_ARG_DST, dnnl::memory({{p.m, p.n}, dt::s32, tag::ab}, e, sums.data())}});
    backend.stream.wait();
  } catch (const dnnl::error& e) {
    throw_error(ErrorKind::kUnsupported, "int8 gemm (oneDNN, int32 output) m={} n={} k={}: {}", p.m, p.n, p.k, e.what());
  }
  for (std::int64_t i = 0; i < p.m; ++i) {
    const std::int64_t g = i / p.a_rows_per_scale;
    const float a_scale = p.a_scales[g];
    const std::int32_t zero_point = p.a_unsigned ? p.a_zero_points[g] : 0;
    const std::int32_t* row = sums.data() + i * p.n;
    float* y = p.y + i * p.n;
    for (std::int64_t j = 0; j < p.n; ++j) {
      const std::int32_t acc = zero_point != 0 ? row[j] - zero_point * p.w_row_sums[j] : row[j];
      float v = a_scale * p.w_scales[p.w_per_channel ? j : 0] * static_cast<float>(acc);
      if (p.bias != nullptr) v += p.bias[j];
      y[j] = v;
    }
  }
}

#endif

}  // namespace

bool cpu_int8_gemm_available() {
#if defined(CC_ONEDNN_ISOLATED)
  return isolated_onednn_loaded();
#elif defined(CC_HAVE_ONEDNN)
  return true;
#else
  return false;
#endif
}

void int8_gemm_cpu(const Int8Gemm& p) {
  check_problem(p);
#if defined(CC_ONEDNN_ISOLATED)
  if (std::string why; !isolated_onednn_loaded(&why))
    throw_error(ErrorKind::kUnsupported, "int8 gemm on CPU needs oneDNN 2.x (libdnnl.so.2), which could not be loaded: {}", why);
#endif
#if defined(CC_HAVE_ONEDNN)
  thread_local Backend backend;
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  if (p.a_rows_per_scale > 0) {
    int8_gemm_cpu_vector_scales(backend, p);
    return;
  }
  const std::int64_t scale_count = p.w_per_channel ? p.n : 1;
  // The epilogue's one multiplier per output channel: scale_a * scale_w[n].
  std::vector<float> scales(static_cast<std::size_t>(scale_count));
  for (std::int64_t i = 0; i < scale_count; ++i) scales[static_cast<std::size_t>(i)] = p.a_scale * p.w_scales[i];
  std::int32_t zero_point = p.a_zero_point;
  try {
    const dnnl::matmul& matmul = backend.primitive(p);
    const dnnl::engine& e = backend.engine;
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, dnnl::memory({{p.m, p.k}, p.a_unsigned ? dt::u8 : dt::s8, tag::ab}, e, const_cast<void*>(p.a))},
        {DNNL_ARG_WEIGHTS, dnnl::memory({{p.k, p.n}, dt::s8, tag::ba}, e, const_cast<std::int8_t*>(p.w))},
        {DNNL_ARG_DST, dnnl::memory({{p.m, p.n}, dt::f32, tag::ab}, e, p.y)},
        {DNNL_ARG_ATTR_OUTPUT_SCALES, dnnl::memory({{scale_count}, dt::f32, tag::a}, e, scales.data())}};
    if (p.a_unsigned) args.emplace(DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, dnnl::memory({{1}, dt::s32, tag::a}, e, &zero_point));
    matmul.execute(backend.stream, args);
    backend.stream.wait();
  } catch (const dnnl::error& e) {
    throw_error(ErrorKind::kUnsupported, "int8 gemm (oneDNN) m={} n={} k={}: {}", p.m, p.n, p.k, e.what());
  }
  // Bias after the epilogue, in float: oneDNN's int8 matmul would add it before scaling.
  if (p.bias != nullptr)
    for (std::int64_t i = 0; i < p.m; ++i)
      for (std::int64_t j = 0; j < p.n; ++j) p.y[i * p.n + j] += p.bias[j];
#else
  throw_error(ErrorKind::kUnsupported, "int8 gemm on CPU needs oneDNN (libdnnl-dev); this build was configured without it");
#endif
}

}  // namespace cushioncache::kernels
