#include "cushioncache/analysis/activation_stats.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/core/progress.h"

namespace cushioncache {
namespace {

double quantile_of(const at::Tensor& values, double q) {
  const std::int64_t n = values.numel();
  const auto k = std::max<std::int64_t>(1, std::min<std::int64_t>(n, static_cast<std::int64_t>(std::ceil(q * static_cast<double>(n)))));
  return std::get<0>(values.reshape({-1}).kthvalue(k)).item<double>();
}

class StatsHook : public ActivationHook {
 public:
  StatsHook(const StatsOptions& options, ActivationReport& report) : options_(options), report_(report) {}

  std::int64_t sample_offset = 0;  // index of the first sample in the current batch

  at::Tensor on_activation(const SiteContext& ctx, const at::Tensor& x) override {
    if (ctx.site == Site::kAttnProbs) {
      observe_attention(ctx, x.detach());
    } else if (std::find(options_.sites.begin(), options_.sites.end(), ctx.site) != options_.sites.end() && x.dim() == 3) {
      observe_site(ctx, x.detach());
    }
    return x;
  }

  void finish() {
    for (auto& [key, acc] : sites_) {
      SiteStats s = acc.stats;
      s.top10pct = acc.top10_sum / static_cast<double>(acc.count);
      s.median = acc.median_sum / static_cast<double>(acc.count);
      report_.sites.push_back(s);
    }
    std::sort(report_.sites.begin(), report_.sites.end(), [](const SiteStats& a, const SiteStats& b) {
      return a.layer != b.layer ? a.layer < b.layer : static_cast<int>(a.site) < static_cast<int>(b.site);
    });
    for (auto& [layer, acc] : attention_) {
      AttentionSinkStats a;
      a.layer = layer;
      for (double m : acc.mass) a.mass_on_first.push_back(m / static_cast<double>(acc.count));
      for (double m : acc.head_mass) a.head_mass_on_key0.push_back(m / static_cast<double>(acc.count));
      report_.attention.push_back(a);
    }
  }

 private:
  struct SiteAccumulator {
    SiteStats stats;
    double top10_sum = 0, median_sum = 0;
    std::int64_t count = 0;
  };
  struct AttentionAccumulator {
    std::vector<double> mass, head_mass;
    std::int64_t count = 0;
  };

  void observe_site(const SiteContext& ctx, const at::Tensor& x) {
    at::Tensor a = x.abs().to(at::kFloat);  // [B, T, C]
    if (!ctx.all_text) a = a.masked_fill(ctx.text_mask.logical_not().unsqueeze(-1), 0.0);
    if (!at::isfinite(a).all().item<bool>())
      throw_error(ErrorKind::kNumerical, "layer {} {}: NaN or Inf in the activations", ctx.layer, site_name(ctx.site));
    auto& acc = sites_[{ctx.layer, static_cast<int>(ctx.site)}];
    acc.stats.layer = ctx.layer;
    acc.stats.site = ctx.site;
    const std::int64_t B = a.size(0), T = a.size(1), C = a.size(2);
    for (std::int64_t b = 0; b < B; ++b) {
      at::Tensor row = a[b];
      at::Tensor values = ctx.all_text ? row.reshape({-1}) : row.index_select(0, ctx.text_mask[b].nonzero().squeeze(1)).reshape({-1});
      if (values.numel() == 0) continue;
      const auto flat_index = row.reshape({-1}).argmax().item<std::int64_t>();
      const double top = row.reshape({-1})[flat_index].item<double>();
      if (acc.count == 0 || top > acc.stats.top1) {
        acc.stats.top1 = top;
        acc.stats.top1_sample = sample_offset + b;
        acc.stats.top1_position = flat_index / C;
        acc.stats.top1_channel = flat_index % C;
      }
      acc.top10_sum += quantile_of(values, 0.9);
      acc.median_sum += quantile_of(values, 0.5);
      ++acc.count;
    }
    if (ctx.site == Site::kBlockInput && sample_offset == 0) {
      at::Tensor token_max = a[0].amax(-1).to(at::kDouble).contiguous();
      if (report_.token_max.size() <= static_cast<std::size_t>(ctx.layer)) report_.token_max.resize(static_cast<std::size_t>(ctx.layer) + 1);
      report_.token_max[static_cast<std::size_t>(ctx.layer)].assign(token_max.data_ptr<double>(), token_max.data_ptr<double>() + T);
    }
  }

  void observe_attention(const SiteContext& ctx, const at::Tensor& probs) {  // [B, H, T, S]
    const std::int64_t k = std::min<std::int64_t>(options_.first_keys, probs.size(3));
    at::Tensor first = probs.narrow(3, 0, k).to(at::kDouble);  // [B, H, T, k]
    at::Tensor weight = ctx.all_text ? at::ones({probs.size(0), probs.size(2)}, first.options()) : ctx.text_mask.to(at::kDouble);
    // Mean over heads, then over text queries of every sample.
    at::Tensor per_query = first.mean(1);  // [B, T, k]
    at::Tensor mass = (per_query * weight.unsqueeze(-1)).sum(at::IntArrayRef{0, 1}) / weight.sum().clamp_min(1.0);
    // Per head, key 0 only: [B, H, T] weighted over the text queries of every sample.
    at::Tensor head_mass = (first.select(3, 0) * weight.unsqueeze(1)).sum(at::IntArrayRef{0, 2}) / weight.sum().clamp_min(1.0);
    auto& acc = attention_[ctx.layer];
    if (acc.mass.empty()) acc.mass.assign(static_cast<std::size_t>(k), 0.0);
    if (acc.head_mass.empty()) acc.head_mass.assign(static_cast<std::size_t>(probs.size(1)), 0.0);
    for (std::int64_t i = 0; i < k; ++i) acc.mass[static_cast<std::size_t>(i)] += mass[i].item<double>();
    const at::Tensor heads = head_mass.contiguous();
    for (std::int64_t h = 0; h < heads.size(0); ++h) acc.head_mass[static_cast<std::size_t>(h)] += heads.data_ptr<double>()[h];
    ++acc.count;
  }

  const StatsOptions& options_;
  ActivationReport& report_;
  std::map<std::pair<int, int>, SiteAccumulator> sites_;
  std::map<int, AttentionAccumulator> attention_;
};

}  // namespace

ActivationReport collect_activation_stats(CausalLM& model, const std::vector<std::vector<std::int64_t>>& samples, const KVCache* prefix,
                                          const StatsOptions& options) {
  if (samples.empty()) throw_error(ErrorKind::kInvalidArgument, "activation statistics need at least one sample");
  ActivationReport report;
  report.samples = static_cast<std::int64_t>(samples.size());
  report.seq_len = static_cast<std::int64_t>(samples.front().size());
  report.prefix_length = prefix != nullptr ? prefix->length() : 0;
  auto hook = std::make_shared<StatsHook>(options, report);
  c10::NoGradGuard no_grad;
  {
    HookHandle handle = model.add_hook(hook);
    Progress progress("activation statistics", report.samples, "seq");
    // One sample per forward keeps the per-sample quantiles exact and memory small.
    for (std::size_t i = 0; i < samples.size(); ++i) {
      hook->sample_offset = static_cast<std::int64_t>(i);
      ForwardOptions fo;
      fo.past = prefix;
      fo.last_logits_only = true;
      (void)model.forward(at::tensor(samples[i], at::kLong).unsqueeze(0), fo);
      progress.advance();
    }
  }
  hook->finish();
  return report;
}

const SiteStats& last_block_input(const ActivationReport& report) {
  const SiteStats* last = nullptr;
  for (const auto& s : report.sites)
    if (s.site == Site::kBlockInput && (last == nullptr || s.layer > last->layer)) last = &s;
  if (last == nullptr) throw_error(ErrorKind::kInvalidArgument, "the report holds no block_input statistics");
  return *last;
}

nlohmann::json to_json(const ActivationReport& r) {
  nlohmann::json sites = nlohmann::json::array(), attention = nlohmann::json::array();
  for (const auto& s : r.sites)
    sites.push_back({{"layer", s.layer},
                     {"site", site_name(s.site)},
                     {"top1", s.top1},
                     {"top10pct", s.top10pct},
                     {"median", s.median},
                     {"top1_sample", s.top1_sample},
                     {"top1_position", s.top1_position},
                     {"top1_channel", s.top1_channel}});
  for (const auto& a : r.attention)
    attention.push_back({{"layer", a.layer}, {"mass_on_first", a.mass_on_first}, {"head_mass_on_key0", a.head_mass_on_key0}});
  const SiteStats& last = last_block_input(r);
  return {{"samples", r.samples},
          {"seq_len", r.seq_len},
          {"prefix_length", r.prefix_length},
          {"last_block_input", {{"top1", last.top1}, {"top10pct", last.top10pct}, {"median", last.median}}},
          {"sites", sites},
          {"attention", attention}};
}

}  // namespace cushioncache
