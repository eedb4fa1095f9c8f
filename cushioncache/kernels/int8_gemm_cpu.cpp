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
  if (!std::isfinite(p.a_scale) || p.a_scale <= 0) throw_error(ErrorKind::kInvalidArgument, "int8 gemm: a_scale {} is not a positive number", p.a_scale);
  const std::int64_t scales = p.w_per_channel ? p.n : 1;
  for (std::int64_t i = 0; i < scales; ++i)
    if (!std::isfinite(p.w_scales[i]) || p.w_scales[i] <= 0)
      throw_error(ErrorKind::kInvalidArgument, "int8 gemm: w_scales[{}] = {} is not a positive number", i, p.w_scales[i]);
}

#if defined(CC_HAVE_ONEDNN)

using Shape = std::tuple<std::int64_t, std::int64_t, std::int64_t, bool, bool>;  // m, n, k, a_unsigned, per_channel

// Building a oneDNN primitive costs far more than running a small one, and a model
// calls the same few shapes over and over: one cache per thread (primitives are not
// shared across threads while executing).
struct Backend {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::map<Shape, dnnl::matmul> primitives;

  const dnnl::matmul& primitive(const Int8Gemm& p) {
    const Shape shape{p.m, p.n, p.k, p.a_unsigned, p.w_per_channel};
    auto it = primitives.find(shape);
    if (it != primitives.end()) return it->second;
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const dnnl::memory::desc a_md({p.m, p.k}, p.a_unsigned ? dt::u8 : dt::s8, tag::ab);
    const dnnl::memory::desc w_md({p.k, p.n}, dt::s8, tag::ba);  // w is [n, k] row-major
    const dnnl::memory::desc y_md({p.m, p.n}, dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    attr.set_output_scales(p.w_per_channel ? 1 << 1 : 0, {DNNL_RUNTIME_F32_VAL});
    if (p.a_unsigned) attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, w_md, y_md), attr, engine);
    return primitives.emplace(shape, dnnl::matmul(pd)).first->second;
  }
};

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
