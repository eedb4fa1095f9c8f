// OPT (facebook/opt-*): learned positions with an offset of 2, LayerNorm before (or, for
// opt-350m, after) each residual add, ReLU MLP, biases everywhere, and for models whose
// embeddings are narrower than the blocks, project_in/out around them. Math as in
// transformers' models/opt/modeling_opt.py.
#pragma once

#include <string>
#include <vector>

#include "cushioncache/model/causal_lm.h"
#include "cushioncache/model/family.h"
#include "cushioncache/model/layers.h"

namespace cushioncache {

struct OptLayer {
  LayerNorm attn_norm;  // self_attn_layer_norm
  Linear q_proj, k_proj, v_proj, out_proj;
  LayerNorm mlp_norm;   // final_layer_norm (of the layer)
  Linear fc1, fc2;
};

class OptModel : public CausalLM {
 public:
  OptModel(ModelConfig config, const WeightSource& weights);

  c10::Device device() const override { return embed_tokens_.device(); }
  c10::ScalarType dtype() const override { return embed_tokens_.scalar_type(); }

  at::Tensor embed(const at::Tensor& input_ids, const ForwardState& state) const override;
  at::Tensor head(const at::Tensor& hidden, bool last_only) const override;

  std::vector<LinearRef> linears() override;
  std::vector<std::pair<std::string, at::Tensor*>> named_weights() override;
  std::vector<SiteProducer> site_producers() override;

  static WeightList expected_weights(const ModelConfig& config);

  // OPT's learned position table starts its rows at position -2 (fairseq's padding rows).
  static constexpr std::int64_t kPositionOffset = 2;

 protected:
  // fc1's output, its activation and the output: a plain two-layer MLP.
  std::int64_t mlp_peak_elements_per_token() const override { return 2 * config().intermediate_size + config().hidden_size; }

  at::Tensor compute_block(int layer, const at::Tensor& hidden, ForwardState& state) const override;

 private:
  at::Tensor embed_tokens_;   // [vocab, word_embed_proj_dim]
  at::Tensor embed_positions_;  // [max_position_embeddings + 2, hidden]
  Linear project_in_, project_out_;  // undefined weight when the widths agree
  std::vector<OptLayer> layers_;
  LayerNorm final_norm_;  // undefined when the decoder has none
  Linear lm_head_;
};

}  // namespace cushioncache
