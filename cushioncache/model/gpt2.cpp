#include "cushioncache/model/gpt2.h"

#include <cmath>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/core/strings.h"
#include "cushioncache/io/json_file.h"

namespace cushioncache {
namespace {
using nlohmann::json;

std::string layer_prefix(int layer) { return fmt::format("transformer.h.{}.", layer); }

// transformers' configuration_gpt2.py.
void parse_gpt2_config(const json& j, ModelConfig& c) {
  c.vocab_size = required_field<std::int64_t>(j, "vocab_size");
  c.hidden_size = required_field<std::int64_t>(j, "n_embd");
  c.num_layers = required_field<std::int64_t>(j, "n_layer");
  c.num_heads = required_field<std::int64_t>(j, "n_head");
  if (c.num_heads > 0 && c.hidden_size % c.num_heads != 0)
    throw_error(ErrorKind::kInvalidConfig, "n_embd {} is not divisible by n_head {}", c.hidden_size, c.num_heads);
  c.num_kv_heads = c.num_heads;
  c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  c.intermediate_size = optional_field<std::int64_t>(j, "n_inner", 4 * c.hidden_size);
  c.max_position_embeddings = optional_field<std::int64_t>(j, "n_positions", 1024);
  c.norm_eps = optional_field<double>(j, "layer_norm_epsilon", 1e-5);
  c.hidden_act = optional_field<std::string>(j, "activation_function", "gelu_new");
  c.tie_word_embeddings = optional_field<bool>(j, "tie_word_embeddings", true);
  c.attention_bias = c.o_proj_bias = c.mlp_bias = true;
  c.scale_attn_by_inverse_layer_idx = optional_field<bool>(j, "scale_attn_by_inverse_layer_idx", false);
  if (!optional_field<bool>(j, "scale_attn_weights", true))
    throw_error(ErrorKind::kUnsupported, "GPT-2 with scale_attn_weights = false is not supported");
  if (optional_field<bool>(j, "add_cross_attention", false))
    throw_error(ErrorKind::kUnsupported, "GPT-2 with add_cross_attention (an encoder-decoder) is not a causal LM");
}

void write_gpt2_config(const ModelConfig& c, json& j) {
  j["vocab_size"] = c.vocab_size;
  j["n_embd"] = c.hidden_size;
  j["n_layer"] = c.num_layers;
  j["n_head"] = c.num_heads;
  j["n_inner"] = c.intermediate_size;
  j["n_positions"] = c.max_position_embeddings;
  j["layer_norm_epsilon"] = c.norm_eps;
  j["activation_function"] = c.hidden_act;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["scale_attn_by_inverse_layer_idx"] = c.scale_attn_by_inverse_layer_idx;
}

at::Tensor gpt2_checkpoint_layout(const std::string& name, const at::Tensor& tensor) {
  return Gpt2Model::is_conv1d_weight(name) ? tensor.t().contiguous() : tensor;
}

}  // namespace

const ModelFamily& gpt2_family() {
  static const ModelFamily family{
      {"gpt2"},
      PositionKind::kLearned,
      "transformer.",
      "transformer.h.",
      [](const ModelConfig&) -> std::string { return "GPT2LMHeadModel"; },
      parse_gpt2_config,
      write_gpt2_config,
      Gpt2Model::expected_weights,
      [](ModelConfig config, const WeightSource& weights) -> std::unique_ptr<CausalLM> {
        return std::make_unique<Gpt2Model>(std::move(config), weights);
      },
      gpt2_checkpoint_layout,
  };
  return family;
}

bool Gpt2Model::is_conv1d_weight(const std::string& name) {
  return ends_with(name, ".attn.c_attn.weight") || ends_with(name, ".attn.c_proj.weight") || ends_with(name, ".mlp.c_fc.weight") ||
         ends_with(name, ".mlp.c_proj.weight");
}

WeightList Gpt2Model::expected_weights(const ModelConfig& c) {
  const std::int64_t H = c.hidden_size, F = c.intermediate_size;
  WeightList w;
  auto conv1d = [&](const std::string& name, std::int64_t in, std::int64_t out) {
    w.push_back({name + ".weight", {in, out}});
    w.push_back({name + ".bias", {out}});
  };
  auto norm = [&](const std::string& name) {
    w.push_back({name + ".weight", {H}});
    w.push_back({name + ".bias", {H}});
  };
  w.push_back({"transformer.wte.weight", {c.vocab_size, H}});
  w.push_back({"transformer.wpe.weight", {c.max_position_embeddings, H}});
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = layer_prefix(l);
    norm(p + "ln_1");
    conv1d(p + "attn.c_attn", H, 3 * H);
    conv1d(p + "attn.c_proj", H, H);
    norm(p + "ln_2");
    conv1d(p + "mlp.c_fc", H, F);
    conv1d(p + "mlp.c_proj", F, H);
  }
  norm("transformer.ln_f");
  if (!c.tie_word_embeddings) w.push_back({"lm_head.weight", {c.vocab_size, H}});
  return w;
}

Gpt2Model::Gpt2Model(ModelConfig config, const WeightSource& weights) : CausalLM(std::move(config)) {
  const ModelConfig& c = this->config();
  c.validate();
  const WeightFetcher take(expected_weights(c), weights);
  auto conv1d = [&](const std::string& name) {
    Linear l = take.linear(name, true);
    l.weight = l.weight.t().contiguous();
    return l;
  };
  wte_ = take("transformer.wte.weight");
  wpe_ = take("transformer.wpe.weight");
  layers_.resize(static_cast<std::size_t>(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = layer_prefix(l);
    Gpt2Layer& layer = layers_[static_cast<std::size_t>(l)];
    layer.ln_1 = take.layer_norm(p + "ln_1");
    layer.c_attn = conv1d(p + "attn.c_attn");
    layer.attn_c_proj = conv1d(p + "attn.c_proj");
    layer.ln_2 = take.layer_norm(p + "ln_2");
    layer.c_fc = conv1d(p + "mlp.c_fc");
    layer.mlp_c_proj = conv1d(p + "mlp.c_proj");
  }
  ln_f_ = take.layer_norm("transformer.ln_f");
  lm_head_.weight = c.tie_word_embeddings ? wte_ : take("lm_head.weight");
}

at::Tensor Gpt2Model::embed(const at::Tensor& input_ids, const ForwardState& state) const {
  // A prefix of length P moves the text to positions P, P + 1, ... (state.positions).
  return at::embedding(wte_, input_ids) + at::embedding(wpe_, state.positions);
}

at::Tensor Gpt2Model::compute_block(int layer, const at::Tensor& hidden, ForwardState& state) const {
  const ModelConfig& c = config();
  const Gpt2Layer& w = layers_[static_cast<std::size_t>(layer)];
  const std::int64_t B = hidden.size(0), T = hidden.size(1), H = c.num_heads, D = c.head_dim, C = c.hidden_size;
  at::Tensor h = at_site(layer, Site::kBlockInput, hidden, state);

  at::Tensor x = at_site(layer, Site::kAttnInput, w.ln_1(h, c.norm_eps), state);
  at::Tensor qkv = w.c_attn(x);
  auto heads = [&](int part) { return qkv.narrow(2, part * C, C).view({B, T, H, D}).transpose(1, 2); };
  double scale = 1.0 / std::sqrt(static_cast<double>(D));
  if (c.scale_attn_by_inverse_layer_idx) scale /= static_cast<double>(layer + 1);
  h = h + w.attn_c_proj(attend(layer, heads(0), heads(1), heads(2), state, scale));

  x = at_site(layer, Site::kMlpInput, w.ln_2(h, c.norm_eps), state);
  x = at_site(layer, Site::kDownProjInput, apply_activation(c.hidden_act, w.c_fc(x)), state);
  return h + w.mlp_c_proj(x);
}

at::Tensor Gpt2Model::head(const at::Tensor& hidden, bool last_only) const {
  at::Tensor h = last_only ? hidden.narrow(1, hidden.size(1) - 1, 1) : hidden;
  return lm_head_(ln_f_(h, config().norm_eps)).to(at::kFloat);
}

std::vector<LinearRef> Gpt2Model::linears() {
  std::vector<LinearRef> refs;
  for (int l = 0; l < config().num_layers; ++l) {
    Gpt2Layer& w = layers_[static_cast<std::size_t>(l)];
    const std::string p = layer_prefix(l);
    refs.push_back({p + "attn.c_attn", l, Site::kAttnInput, &w.c_attn});
    refs.push_back({p + "attn.c_proj", l, Site::kOProjInput, &w.attn_c_proj});
    refs.push_back({p + "mlp.c_fc", l, Site::kMlpInput, &w.c_fc});
    refs.push_back({p + "mlp.c_proj", l, Site::kDownProjInput, &w.mlp_c_proj});
  }
  return refs;
}

std::vector<std::pair<std::string, at::Tensor*>> Gpt2Model::named_weights() {
  NamedWeights out;
  auto norm = [&](const std::string& name, LayerNorm& n) { append_layer_norm(out, name, n); };
  out.emplace_back("transformer.wte.weight", &wte_);
  out.emplace_back("transformer.wpe.weight", &wpe_);
  for (int l = 0; l < config().num_layers; ++l) {
    norm(layer_prefix(l) + "ln_1", layers_[static_cast<std::size_t>(l)].ln_1);
    norm(layer_prefix(l) + "ln_2", layers_[static_cast<std::size_t>(l)].ln_2);
  }
  append_linears(out, linears());
  norm("transformer.ln_f", ln_f_);
  if (!config().tie_word_embeddings) out.emplace_back("lm_head.weight", &lm_head_.weight);
  return out;
}

std::vector<SiteProducer> Gpt2Model::site_producers() {
  const ModelConfig& c = config();
  const auto opts = at::TensorOptions().dtype(at::kLong).device(device());
  at::Tensor channel = at::arange(c.hidden_size, opts);
  std::vector<SiteProducer> out;
  for (int l = 0; l < c.num_layers; ++l) {
    Gpt2Layer& w = layers_[static_cast<std::size_t>(l)];
    out.push_back(SiteProducer::from_norm(l, Site::kAttnInput, {&w.c_attn}, &w.ln_1.weight, &w.ln_1.bias, channel));
    // attn.c_proj's input channel c is the value channel c: c_attn row 2 * hidden + c.
    out.push_back(SiteProducer::from_linear(l, Site::kOProjInput, {&w.attn_c_proj}, &w.c_attn, channel + 2 * c.hidden_size));
    out.push_back(SiteProducer::from_norm(l, Site::kMlpInput, {&w.c_fc}, &w.ln_2.weight, &w.ln_2.bias, channel));
    // gelu_new is not positively homogeneous: mlp.c_proj's input has no producer to fold into.
  }
  return out;
}

}  // namespace cushioncache
