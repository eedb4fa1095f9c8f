// BLOOM (bigscience/bloom-*): ALiBi biases on the attention scores by key position (a
// cached prefix counts in the distance), a LayerNorm on the embeddings, fused
// query_key_value weights in Hugging Face's per-head interleaved q, k, v layout, GELU
// (tanh) MLP, biases everywhere, tied embeddings. Math as in transformers'
// models/bloom/modeling_bloom.py.
#pragma once

#include <string>
#include <vector>

#include "cushioncache/model/causal_lm.h"
#include "cushioncache/model/family.h"
#include "cushioncache/model/layers.h"

namespace cushioncache {

struct BloomLayer {
  LayerNorm input_norm;
  Linear query_key_value;  // [3 * hidden, hidden], rows per head: q (D), k (D), v (D)
  Linear dense;
  LayerNorm post_attention_norm;
  Linear dense_h_to_4h, dense_4h_to_h;
};

class BloomModel : public CausalLM {
 public:
  BloomModel(ModelConfig config, const WeightSource& weights);

  c10::Device device() const override { return word_embeddings_.device(); }
  c10::ScalarType dtype() const override { return word_embeddings_.scalar_type(); }

  at::Tensor embed(const at::Tensor& input_ids, const ForwardState& state) const override;
  at::Tensor head(const at::Tensor& hidden, bool last_only) const override;

  std::vector<LinearRef> linears() override;
  std::vector<std::pair<std::string, at::Tensor*>> named_weights() override;
  std::vector<SiteProducer> site_producers() override;

  static WeightList expected_weights(const ModelConfig& config);

 protected:
  // fc1's output, its activation and the output: a plain two-layer MLP.
  std::int64_t mlp_peak_elements_per_token() const override { return 2 * config().intermediate_size + config().hidden_size; }

  void prepare_positions(ForwardState& state) const override;
  at::Tensor compute_block(int layer, const at::Tensor& hidden, ForwardState& state) const override;

 private:
  at::Tensor word_embeddings_;
  LayerNorm embeddings_norm_;  // word_embeddings_layernorm
  std::vector<BloomLayer> layers_;
  LayerNorm final_norm_;       // ln_f
  Linear lm_head_;
  at::Tensor slopes_;          // [heads] float32
};

// The ALiBi slope of every head: a geometric sequence from 2^(-8/n) for the closest power
// of two n, with odd powers of the next one's base for the remaining heads.
at::Tensor alibi_slopes(std::int64_t heads);

}  // namespace cushioncache
