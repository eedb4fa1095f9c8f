#include "cushioncache/eval/logprobs.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace cushioncache {

ScoredPositions score_positions(CausalLM& model, const at::Tensor& ids, const at::Tensor& mask, const KVCache* prefix,
                                const at::Tensor& rows, const at::Tensor& positions, const at::Tensor& targets,
                                KVCache* cache_out) {
  c10::NoGradGuard no_grad;
  const c10::Device device = model.device();
  ForwardOptions options;
  options.past = prefix;
  options.attention_mask = mask;
  options.return_cache = cache_out != nullptr;
  ForwardState state = model.prepare(ids, options);
  at::Tensor hidden = model.embed(ids.to(device, at::kLong), state);
  for (int l = 0; l < model.config().num_layers; ++l) hidden = model.run_block(l, hidden, state);
  if (cache_out != nullptr) {
    *cache_out = std::move(state.cache);
    cache_out->valid = state.key_valid;
  }

  const std::int64_t T = hidden.size(1);
  at::Tensor flat_index = rows.to(device, at::kLong) * T + positions.to(device, at::kLong);
  at::Tensor selected = hidden.reshape({-1, hidden.size(2)}).index_select(0, flat_index);  // [K, hidden]
  at::Tensor target = targets.to(device, at::kLong);
  const std::int64_t K = selected.size(0);
  // Bound the logits held at once to about 64M floats (256 MB).
  const std::int64_t chunk = std::max<std::int64_t>(1, (std::int64_t{64} << 20) / model.config().vocab_size);
  std::vector<at::Tensor> logprobs, greedy;
  for (std::int64_t start = 0; start < K; start += chunk) {
    const std::int64_t n = std::min(chunk, K - start);
    at::Tensor logits = model.head(selected.narrow(0, start, n).unsqueeze(0), /*last_only=*/false).squeeze(0);  // [n, V]
    at::Tensor log_softmax = at::log_softmax(logits, -1);
    at::Tensor t = target.narrow(0, start, n).unsqueeze(1);
    logprobs.push_back(log_softmax.gather(1, t).squeeze(1).to(at::kDouble));
    greedy.push_back(logits.argmax(-1).eq(t.squeeze(1)));
  }
  return {at::cat(logprobs).cpu(), at::cat(greedy).cpu()};
}

}  // namespace cushioncache
