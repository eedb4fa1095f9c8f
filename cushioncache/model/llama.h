// The LLaMA family (LLaMA-2, LLaMA-3 with rope_scaling, Mistral with sliding windows,
// Qwen2 with q/k/v biases): RMSNorm, rotary positions in Hugging Face's half-rotation
// layout, grouped-query attention, SwiGLU MLP, tied or untied embeddings.
#pragma once

#include <string>
#include <vector>

#include "cushioncache/model/causal_lm.h"
#include "cushioncache/model/family.h"

namespace cushioncache {

struct LlamaLayer {
  at::Tensor input_norm;  // input_layernorm.weight
  Linear q_proj, k_proj, v_proj, o_proj;
  at::Tensor post_attention_norm;
  Linear gate_proj, up_proj, down_proj;
};

class LlamaModel : public CausalLM {
 public:
  LlamaModel(ModelConfig config, const WeightSource& weights);

  c10::Device device() const override { return embed_tokens_.device(); }
  c10::ScalarType dtype() const override { return embed_tokens_.scalar_type(); }

  at::Tensor embed(const at::Tensor& input_ids, const ForwardState& state) const override;
  at::Tensor head(const at::Tensor& hidden, bool last_only) const override;

  std::vector<LinearRef> linears() override;
  std::vector<std::pair<std::string, at::Tensor*>> named_weights() override;
  std::vector<SiteProducer> site_producers() override;

  // The names and shapes a checkpoint of this config must hold.
  static WeightList expected_weights(const ModelConfig& config);

 protected:
  void prepare_positions(ForwardState& state) const override;
  at::Tensor compute_block(int layer, const at::Tensor& hidden, ForwardState& state) const override;

 private:
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) const;
  at::Tensor attention(int layer, const at::Tensor& x, ForwardState& state) const;

  at::Tensor embed_tokens_;
  std::vector<LlamaLayer> layers_;
  at::Tensor final_norm_;
  Linear lm_head_;      // weight aliases embed_tokens_ when tied
  at::Tensor inv_freq_;  // [head_dim / 2] float32, after rope scaling
};

// RoPE inverse frequencies for a config, including linear and LLaMA-3 scaling, computed
// in float32 with the same operations as transformers (so positions match bit for bit).
at::Tensor rope_inverse_frequencies(const ModelConfig& config);

}  // namespace cushioncache
