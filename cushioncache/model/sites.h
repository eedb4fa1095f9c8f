// Activation sites: the one seam through which quantization, SmoothQuant, statistics and
// the prefix search reach inside a model. Every block reports its activations at named
// sites; a hook can read each one and may return a replacement, which the next op
// consumes. Models know nothing of what the hooks do.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/core/Tensor.h>

namespace cushioncache {

enum class Site {
  kBlockInput,     // residual stream entering the block            [B, T, hidden]
  kAttnInput,      // normed input of q/k/v projections (shared)    [B, T, hidden]
  kQuery,          // queries after RoPE, attention matmul input    [B, heads, T, head_dim]
  kKey,            // keys after RoPE, as stored in the KV cache    [B, kv_heads, T, head_dim]
  kValue,          // values, as stored in the KV cache             [B, kv_heads, T, head_dim]
  kAttnProbs,      // softmax output over prefix + text keys        [B, heads, T, S]
  kOProjInput,     // attention output entering o_proj              [B, T, heads * head_dim]
  kMlpInput,       // normed input of gate/up (or fc1)              [B, T, hidden]
  kDownProjInput,  // input of down_proj (or fc2)                   [B, T, intermediate]
};

const std::vector<Site>& all_sites();
const char* site_name(Site site);           // "block_input", "attn_input", ...
Site parse_site(std::string_view name);     // kInvalidArgument listing the valid names

// What a hook knows about the activation it is shown.
struct SiteContext {
  int layer = 0;
  Site site = Site::kBlockInput;
  // [B, T] bool: true at real text tokens; false at padding and at input positions that
  // belong to the prefix (ForwardOptions::prefix_tokens). Prefix tokens supplied as a
  // cached KV never appear in activations at all. T is dim 1 of [B, T, C] activations and
  // dim 2 of per-head ones.
  at::Tensor text_mask;
  std::int64_t prefix_tokens = 0;  // leading input positions that are prefix tokens
  // True when text_mask is all true (no padding, no prefix tokens in the input): known
  // without looking at the mask, so hooks can skip masking without a device sync.
  bool all_text = true;
  // The token ids of this input [B, T], and those the cached past holds ([B or 1, P];
  // undefined when there is no past or its tokens are unknown): for hooks keyed to tokens.
  at::Tensor input_ids;
  at::Tensor past_tokens;
  std::int64_t past_length = 0;  // positions cached before this input
};

class ActivationHook {
 public:
  virtual ~ActivationHook() = default;
  // Return `x` unchanged to observe, or a tensor of the same shape to replace it.
  virtual at::Tensor on_activation(const SiteContext& context, const at::Tensor& x) = 0;
};

}  // namespace cushioncache
