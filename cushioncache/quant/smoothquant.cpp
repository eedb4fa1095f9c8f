#include "cushioncache/quant/smoothquant.h"

#include <algorithm>
#include <limits>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"

namespace cushioncache {
namespace {

// Channels move to the last dimension: [B, T, C] stays, per-head layouts are not smoothed.
class AbsMaxObserver : public ActivationHook {
 public:
  explicit AbsMaxObserver(std::vector<Site> sites) : sites_(std::move(sites)) {}
  at::Tensor on_activation(const SiteContext& ctx, const at::Tensor& x) override {
    if (std::find(sites_.begin(), sites_.end(), ctx.site) == sites_.end()) return x;
    at::Tensor rows = x.detach().abs().reshape({-1, x.size(-1)});
    if (!ctx.all_text) rows = rows.index_select(0, ctx.text_mask.reshape({-1}).nonzero().squeeze(1));
    if (rows.size(0) == 0) return x;
    at::Tensor m = rows.amax(0).to(at::kFloat);
    if (!at::isfinite(m).all().item<bool>())
      throw_error(ErrorKind::kNumerical, "layer {} {}: NaN or Inf in the activations during SmoothQuant calibration", ctx.layer,
                  site_name(ctx.site));
    auto [it, inserted] = absmax_.emplace(SiteKey{ctx.layer, ctx.site}, m);
    if (!inserted) it->second = at::maximum(it->second, m);
    return x;
  }
  std::map<SiteKey, at::Tensor> absmax_;

 private:
  std::vector<Site> sites_;
};

// out[r] = max of values[c] over the channels c with row[c] == r, -inf for rows no
// channel maps to (a few thousand channels: a plain loop on the CPU).
at::Tensor max_per_row(const at::Tensor& values, const at::Tensor& row, std::int64_t rows) {
  const at::Tensor v = values.to(at::kCPU, at::kFloat).contiguous();
  const at::Tensor r = row.to(at::kCPU, at::kLong).contiguous();
  at::Tensor out = at::full({rows}, -std::numeric_limits<float>::infinity(), at::kFloat);
  float* o = out.data_ptr<float>();
  const float* in = v.data_ptr<float>();
  const std::int64_t* idx = r.data_ptr<std::int64_t>();
  for (std::int64_t c = 0; c < v.numel(); ++c) o[idx[c]] = std::max(o[idx[c]], in[c]);
  return out.to(values.device());
}

}  // namespace

std::map<SiteKey, at::Tensor> collect_channel_absmax(CausalLM& model, const CalibrationSet& calibration, const KVCache* prefix,
                                                     const std::vector<Site>& sites) {
  auto observer = std::make_shared<AbsMaxObserver>(sites);
  {
    HookHandle handle = model.add_hook(observer);
    run_calibration(model, calibration, prefix, 8, "smoothquant calibration");
  }
  return std::move(observer->absmax_);
}

std::map<SiteKey, at::Tensor> apply_smoothquant(CausalLM& model, const std::map<SiteKey, at::Tensor>& activation_absmax, double alpha) {
  c10::NoGradGuard no_grad;
  constexpr double kFloor = 1e-5;  // no channel may get a zero (or infinite) scale
  std::map<SiteKey, at::Tensor> scales;
  for (SiteProducer& p : model.site_producers()) {
    auto it = activation_absmax.find({p.layer, p.site});
    if (it == activation_absmax.end()) continue;
    const at::Tensor act = it->second.to(p.producer_row.device(), at::kFloat);  // [C]
    const std::int64_t C = act.size(0);
    if (p.producer_row.size(0) != C)
      throw_error(ErrorKind::kInternal, "layer {} {}: {} channels observed, {} mapped", p.layer, site_name(p.site), C,
                  p.producer_row.size(0));
    at::Tensor weight = at::zeros({C}, act.options());
    for (Linear* consumer : p.consumers) weight = at::maximum(weight, consumer->weight.abs().amax(0).to(at::kFloat));
    // Channels fed by one producer row must share their scale (grouped-query attention).
    // Rows that feed no site channel (the query and key rows of a fused projection) keep 1.
    const std::int64_t rows = p.producer != nullptr ? p.producer->weight.size(0) : C;
    at::Tensor act_row = max_per_row(act, p.producer_row, rows);
    at::Tensor weight_row = max_per_row(weight, p.producer_row, rows);
    at::Tensor s_row = act_row.clamp_min(kFloor).pow(alpha) / weight_row.clamp_min(kFloor).pow(1.0 - alpha);
    s_row = at::where(act_row.isneginf(), at::ones_like(s_row), s_row);
    at::Tensor s = s_row.index_select(0, p.producer_row);  // per site channel

    if (p.norm_weight != nullptr) {
      *p.norm_weight = (p.norm_weight->to(at::kFloat) / s).to(p.norm_weight->scalar_type());
      if (p.norm_bias != nullptr && p.norm_bias->defined())
        *p.norm_bias = (p.norm_bias->to(at::kFloat) / s).to(p.norm_bias->scalar_type());
    } else {
      Linear& producer = *p.producer;
      producer.weight = (producer.weight.to(at::kFloat) / s_row.unsqueeze(1)).to(producer.weight.scalar_type());
      if (producer.bias.defined()) producer.bias = (producer.bias.to(at::kFloat) / s_row).to(producer.bias.scalar_type());
    }
    for (Linear* consumer : p.consumers)
      consumer->weight = (consumer->weight.to(at::kFloat) * s.unsqueeze(0)).to(consumer->weight.scalar_type());
    scales[{p.layer, p.site}] = s;
  }
  // o_proj's producer is the value projection: every value the model computes from now on
  // is divided, so caches computed before no longer fit (CausalLM::value_basis).
  if (std::any_of(scales.begin(), scales.end(), [](const auto& entry) { return entry.first.second == Site::kOProjInput; }))
    model.change_value_basis();
  // A site the family cannot fold (e.g. the input of a down-projection behind GELU, or
  // any norm output of a post-norm OPT) stays as it is: say so, once per site.
  std::map<Site, int> unfoldable;
  for (const auto& [key, absmax] : activation_absmax)
    if (!scales.count(key)) ++unfoldable[key.second];
  for (const auto& [site, layers] : unfoldable)
    log::warn("SmoothQuant: {} has no producer to fold a scale into in this {} model; left unsmoothed in {} layer(s)", site_name(site),
              model.config().model_type, layers);
  return scales;
}

}  // namespace cushioncache
