#include "cushioncache/quant/quantizer.h"

#include <cmath>
#include <limits>
#include <mutex>

#include <ATen/ATen.h>

#include "cushioncache/core/error.h"

namespace cushioncache {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Masked amin/amax over `dims`, ignoring tokens outside text_mask ([B, T] broadcast over
// the trailing dims of x).
std::pair<at::Tensor, at::Tensor> masked_extrema(const at::Tensor& x, const at::Tensor& text_mask, at::IntArrayRef dims, bool keepdim) {
  if (!text_mask.defined()) return {x.amin(dims, keepdim), x.amax(dims, keepdim)};
  at::Tensor mask = text_mask.to(x.device(), at::kBool);
  while (mask.dim() < x.dim()) mask = mask.unsqueeze(-1);
  const at::Tensor excluded = mask.logical_not();
  return {x.masked_fill(excluded, kInf).amin(dims, keepdim), x.masked_fill(excluded, -kInf).amax(dims, keepdim)};
}

// The q-th quantile of each column of a [N, C] matrix (q in [0, 1]), via kthvalue.
at::Tensor column_quantile(const at::Tensor& values, double q) {
  const std::int64_t n = values.size(0);
  const auto k = std::max<std::int64_t>(1, std::min<std::int64_t>(n, static_cast<std::int64_t>(std::ceil(q * static_cast<double>(n)))));
  return std::get<0>(values.kthvalue(k, 0));
}

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, QuantizerFactory>& registry() {
  static std::map<std::string, QuantizerFactory> r = {
      {"uniform", [](const QuantSpec& spec, const std::string& name) { return std::make_unique<UniformQuantizer>(spec, name); }}};
  return r;
}

}  // namespace

void Quantizer::observe(const at::Tensor&, const at::Tensor&) {}

void Quantizer::load_state(const std::map<std::string, at::Tensor>& state) {
  if (!state.empty()) throw_error(ErrorKind::kMismatch, "quantizer {} keeps no calibrated state, but state was given", name_);
}

UniformQuantizer::UniformQuantizer(QuantSpec spec, std::string name) : Quantizer(std::move(spec), std::move(name)) {
  this->spec().validate();
}

bool UniformQuantizer::needs_calibration() const {
  return spec().enabled() && spec().role == QuantRole::kActivation && spec().mode == RangeMode::kStatic;
}

at::Tensor UniformQuantizer::grouped(const at::Tensor& x) const {
  const std::int64_t C = x.size(-1), G = spec().group_size;
  if (C % G != 0) throw_error(ErrorKind::kInvalidConfig, "{}: group size {} does not divide its {} channels", name(), G, C);
  std::vector<std::int64_t> shape = x.sizes().vec();
  shape.back() = C / G;
  shape.push_back(G);
  return x.reshape(shape);
}

std::pair<at::Tensor, at::Tensor> UniformQuantizer::dynamic_range(const at::Tensor& x, const at::Tensor& text_mask) const {
  if (spec().role == QuantRole::kWeight) {  // x: [out, in]
    switch (spec().granularity) {
      case Granularity::kPerTensor: return {x.min(), x.max()};
      case Granularity::kPerChannel: return {x.amin(1, true), x.amax(1, true)};
      case Granularity::kPerGroup: {
        const at::Tensor g = grouped(x);
        return {g.amin(-1, true), g.amax(-1, true)};
      }
      case Granularity::kPerToken: break;
    }
    throw_error(ErrorKind::kInternal, "weight granularity");
  }
  switch (spec().granularity) {  // x: [B, T, C]
    case Granularity::kPerTensor: return masked_extrema(x, text_mask, {1, 2}, true);  // one range per sequence
    case Granularity::kPerToken: return {x.amin(-1, true), x.amax(-1, true)};
    case Granularity::kPerChannel: return masked_extrema(x, text_mask, {1}, true);
    case Granularity::kPerGroup: {
      const at::Tensor g = grouped(x);
      return {g.amin(-1, true), g.amax(-1, true)};
    }
  }
  throw_error(ErrorKind::kInternal, "activation granularity");
}

// The range of one calibration batch, reduced over everything but the kept channels.
std::pair<at::Tensor, at::Tensor> UniformQuantizer::batch_range(const at::Tensor& x, const at::Tensor& text_mask) const {
  const at::Tensor xf = x.to(at::kFloat);
  at::Tensor rows = xf.reshape({-1, xf.size(-1)});  // [B*T, C]
  if (text_mask.defined()) rows = rows.index_select(0, text_mask.to(x.device(), at::kBool).reshape({-1}).nonzero().squeeze(1));
  if (rows.size(0) == 0) return {};
  if (spec().granularity == Granularity::kPerGroup) {  // [N, C/G, G] -> one range per group
    rows = grouped(rows).permute({0, 2, 1}).reshape({-1, xf.size(-1) / spec().group_size});
  } else if (spec().granularity == Granularity::kPerTensor) {
    rows = rows.reshape({-1, 1});
  }
  if (spec().estimator == RangeEstimator::kPercentile) {
    const double q = spec().percentile / 100.0;
    return {column_quantile(rows, 1.0 - q), column_quantile(rows, q)};
  }
  return {rows.amin(0), rows.amax(0)};
}

void UniformQuantizer::observe(const at::Tensor& x, const at::Tensor& text_mask) {
  if (!needs_calibration()) return;
  if (frozen_) throw_error(ErrorKind::kInvalidArgument, "{}: observe() after freeze()", name());
  auto [lo, hi] = batch_range(x, text_mask);
  if (!lo.defined()) return;  // no text token in this batch
  if (!at::isfinite(lo).all().item<bool>() || !at::isfinite(hi).all().item<bool>())
    throw_error(ErrorKind::kNumerical, "{}: NaN or Inf in the activations during calibration", name());
  if (batches_ == 0) {
    min_ = lo;
    max_ = hi;
  } else if (spec().estimator == RangeEstimator::kMinMax) {
    min_ = at::minimum(min_, lo);
    max_ = at::maximum(max_, hi);
  } else if (spec().estimator == RangeEstimator::kEma) {
    min_ = spec().ema_decay * min_ + (1 - spec().ema_decay) * lo;
    max_ = spec().ema_decay * max_ + (1 - spec().ema_decay) * hi;
  } else {  // percentile: the mean over batches
    const double n = static_cast<double>(batches_);
    min_ = (min_ * n + lo) / (n + 1);
    max_ = (max_ * n + hi) / (n + 1);
  }
  ++batches_;
}

void UniformQuantizer::freeze() {
  if (!needs_calibration() || frozen_) return;
  if (batches_ == 0) throw_error(ErrorKind::kInvalidArgument, "{}: static range never observed (no calibration tokens reached it)", name());
  at::Tensor lo = min_, hi = max_;
  if (spec().granularity == Granularity::kPerGroup) {  // [C/G] -> broadcast over [B, T, C/G, G]
    lo = lo.reshape({1, 1, -1, 1});
    hi = hi.reshape({1, 1, -1, 1});
  }
  frozen_params_ = make_params(lo, hi);
  frozen_ = true;
}

QuantParams UniformQuantizer::make_params(const at::Tensor& min, const at::Tensor& max) const {
  return params_for_range(min, max, spec());
}

at::Tensor UniformQuantizer::quantize(const at::Tensor& x, const at::Tensor& text_mask) {
  if (!spec().enabled()) return x;
  QuantParams params;
  if (needs_calibration()) {
    if (!frozen_) throw_error(ErrorKind::kInvalidArgument, "{}: static quantizer used before calibration", name());
    params = frozen_params_;
    params.scale = params.scale.to(x.device());
    params.zero_point = params.zero_point.to(x.device());
  } else {
    auto [lo, hi] = dynamic_range(x.detach(), text_mask);
    params = make_params(lo, hi);
  }
  const bool by_group = spec().granularity == Granularity::kPerGroup;
  at::Tensor out = fake_quantize(by_group ? grouped(x) : x, params);
  if (by_group) out = out.reshape(x.sizes());
  if (text_mask.defined() && spec().role == QuantRole::kActivation && !text_mask.all().item<bool>()) {
    // The prefix and padding pass through in full precision.
    out = at::where(text_mask.to(x.device(), at::kBool).unsqueeze(-1), out, x);
  }
  return out;
}

std::map<std::string, at::Tensor> UniformQuantizer::state() const {
  if (!needs_calibration()) return {};
  if (batches_ == 0) throw_error(ErrorKind::kInvalidArgument, "{}: nothing calibrated to save", name());
  return {{"min", min_.cpu()}, {"max", max_.cpu()}};
}

void UniformQuantizer::load_state(const std::map<std::string, at::Tensor>& state) {
  if (!needs_calibration()) return Quantizer::load_state(state);
  auto lo = state.find("min"), hi = state.find("max");
  if (lo == state.end() || hi == state.end()) throw_error(ErrorKind::kMismatch, "{}: saved state lacks 'min' or 'max'", name());
  if (lo->second.sizes() != hi->second.sizes())
    throw_error(ErrorKind::kMismatch, "{}: saved 'min' and 'max' differ in shape", name());
  min_ = lo->second.to(at::kFloat);
  max_ = hi->second.to(at::kFloat);
  batches_ = 1;
  frozen_ = false;
  freeze();
}

void register_quantizer(const std::string& kind, QuantizerFactory factory) {
  if (kind.empty() || !factory) throw_error(ErrorKind::kInvalidArgument, "register_quantizer needs a name and a factory");
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry()[kind] = std::move(factory);
}

std::unique_ptr<Quantizer> make_quantizer(const std::string& kind, const QuantSpec& spec, const std::string& name) {
  QuantizerFactory factory;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = registry().find(kind);
    if (it == registry().end()) {
      std::string known;
      for (const auto& [k, f] : registry()) known += (known.empty() ? "" : ", ") + k;
      throw_error(ErrorKind::kInvalidConfig, "quantizer '{}' is not registered (known: {})", kind, known);
    }
    factory = it->second;
  }
  auto q = factory(spec, name);
  if (!q) throw_error(ErrorKind::kInternal, "the factory of quantizer '{}' returned nothing", kind);
  return q;
}

std::vector<std::string> quantizer_kinds() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> kinds;
  for (const auto& [k, f] : registry()) kinds.push_back(k);
  return kinds;
}

}  // namespace cushioncache
