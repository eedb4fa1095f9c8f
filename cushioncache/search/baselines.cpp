#include "cushioncache/search/baselines.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/tokenizer/text_windows.h"

namespace cushioncache {
namespace {

// Marks, per input position, whether any layer's down_proj input there is an outlier.
class OutlierPositions : public ActivationHook {
 public:
  explicit OutlierPositions(double threshold) : threshold_(threshold) {}
  at::Tensor flagged;  // [B, T] bool
  at::Tensor on_activation(const SiteContext& ctx, const at::Tensor& x) override {
    if (ctx.site != Site::kDownProjInput) return x;
    const at::Tensor a = x.detach().abs().to(at::kFloat);  // [B, T, C]
    const at::Tensor median = std::get<0>(a.reshape({a.size(0), -1}).median(1)).clamp_min(1e-12);  // per sequence
    const at::Tensor outlier = a.amax(-1).gt(median.unsqueeze(1) * threshold_);
    flagged = flagged.defined() ? flagged | outlier : outlier;
    return x;
  }

 private:
  double threshold_;
};

}  // namespace

std::vector<std::int64_t> bos_prefix_tokens(const Tokenizer& tokenizer) {
  if (!tokenizer.bos_id()) throw_error(ErrorKind::kInvalidArgument, "the BOS baseline needs a tokenizer with a BOS token");
  return {*tokenizer.bos_id()};
}

nlohmann::json to_json(const PrefixQuantOptions& o) {
  nlohmann::json j = to_json(o.windows);
  j["threshold"] = o.threshold;
  j["max_tokens"] = o.max_tokens;
  return j;
}

PrefixQuantResult prefixquant_prefix(CausalLM& model, const Tokenizer& tokenizer, const PrefixQuantOptions& options) {
  const auto bos = bos_prefix_tokens(tokenizer);
  // Ordinary inputs, BOS first: the statistics of the model as users run it.
  const SampledWindows set = sample_text_windows(tokenizer, options.windows, room_after_prefix(model.config().max_position_embeddings, 0),
                                                 BosPolicy::kYes);
  std::map<std::int64_t, std::int64_t> counts;
  std::int64_t flagged_positions = 0;
  c10::NoGradGuard no_grad;
  for (const auto& seq : set.sequences) {
    auto hook = std::make_shared<OutlierPositions>(options.threshold);
    HookHandle handle = model.add_hook(hook);
    ForwardOptions fo;
    fo.last_logits_only = true;
    const at::Tensor ids = at::tensor(seq, at::kLong);
    (void)model.forward(ids.unsqueeze(0), fo);
    const at::Tensor flagged = hook->flagged[0].cpu();
    for (std::int64_t t = 0; t < ids.numel(); ++t) {
      if (!flagged[t].item<bool>()) continue;
      ++flagged_positions;
      if (seq[static_cast<std::size_t>(t)] != bos[0]) ++counts[seq[static_cast<std::size_t>(t)]];
    }
  }
  PrefixQuantResult result;
  result.outlier_tokens_per_sequence = static_cast<double>(flagged_positions) / static_cast<double>(set.sequences.size());
  for (const auto& [token, n] : counts) result.counts.emplace_back(token, n);
  std::sort(result.counts.begin(), result.counts.end(),
            [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
  // As many tokens as a sequence carries outlier positions on average, BOS among them.
  const auto wanted = std::min<std::int64_t>(options.max_tokens, std::max<std::int64_t>(0, std::llround(result.outlier_tokens_per_sequence) - 1));
  for (std::int64_t i = 0; i < wanted && i < static_cast<std::int64_t>(result.counts.size()); ++i)
    result.tokens.push_back(result.counts[static_cast<std::size_t>(i)].first);
  result.tokens.push_back(bos[0]);
  return result;
}

}  // namespace cushioncache
