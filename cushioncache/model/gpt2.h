// GPT-2 (gpt2, gpt2-medium, ..., distilgpt2): learned positions, pre-LayerNorm blocks,
// fused c_attn (q, k, v blocks one after another), gelu_new MLP. Hugging Face stores its
// projections as Conv1D weights [in, out]; the model holds them as [out, in] like every
// other linear and transposes back when saving. Math as in transformers'
// models/gpt2/modeling_gpt2.py.
#pragma once

#include <string>
#include <vector>

#include "cushioncache/model/causal_lm.h"
#include "cushioncache/model/family.h"
#include "cushioncache/model/layers.h"

namespace cushioncache {

struct Gpt2Layer {
  LayerNorm ln_1;
  Linear c_attn;  // [3 * hidden, hidden]: rows q (hidden), k (hidden), v (hidden)
  Linear attn_c_proj;
  LayerNorm ln_2;
  Linear c_fc, mlp_c_proj;
};

class Gpt2Model : public CausalLM {
 public:
  Gpt2Model(ModelConfig config, const WeightSource& weights);

  c10::Device device() const override { return wte_.device(); }
  c10::ScalarType dtype() const override { return wte_.scalar_type(); }

  at::Tensor embed(const at::Tensor& input_ids, const ForwardState& state) const override;
  at::Tensor head(const at::Tensor& hidden, bool last_only) const override;

  std::vector<LinearRef> linears() override;
  std::vector<std::pair<std::string, at::Tensor*>> named_weights() override;
  std::vector<SiteProducer> site_producers() override;

  static WeightList expected_weights(const ModelConfig& config);
  // Whether the checkpoint stores `name` as a Conv1D weight ([in, out]).
  static bool is_conv1d_weight(const std::string& name);

 protected:
  // fc1's output, its activation and the output: a plain two-layer MLP.
  std::int64_t mlp_peak_elements_per_token() const override { return 2 * config().intermediate_size + config().hidden_size; }

  at::Tensor compute_block(int layer, const at::Tensor& hidden, ForwardState& state) const override;

 private:
  at::Tensor wte_, wpe_;
  std::vector<Gpt2Layer> layers_;
  LayerNorm ln_f_;
  Linear lm_head_;
};

}  // namespace cushioncache
