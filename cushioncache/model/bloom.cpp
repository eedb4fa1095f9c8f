#include "cushioncache/model/bloom.h"

#include <cmath>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/io/json_file.h"

namespace cushioncache {
namespace {
using nlohmann::json;

std::string layer_prefix(int layer) { return fmt::format("transformer.h.{}.", layer); }

// The first key present among `keys` (BLOOM configs use both the old and the new names).
template <typename T>
T first_of(const json& j, std::initializer_list<const char*> keys) {
  for (const char* key : keys)
    if (j.contains(key) && !j[key].is_null()) return required_field<T>(j, key);
  return required_field<T>(j, *keys.begin());  // names the preferred key as missing
}

// transformers' configuration_bloom.py (n_layer / n_head with their attribute_map aliases,
// the legacy n_embed).
void parse_bloom_config(const json& j, ModelConfig& c) {
  c.vocab_size = required_field<std::int64_t>(j, "vocab_size");
  c.hidden_size = first_of<std::int64_t>(j, {"hidden_size", "n_embed"});
  c.num_layers = first_of<std::int64_t>(j, {"n_layer", "num_hidden_layers"});
  c.num_heads = first_of<std::int64_t>(j, {"n_head", "num_attention_heads"});
  if (c.num_heads > 0 && c.hidden_size % c.num_heads != 0)
    throw_error(ErrorKind::kInvalidConfig, "hidden_size {} is not divisible by n_head {}", c.hidden_size, c.num_heads);
  c.num_kv_heads = c.num_heads;
  c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  c.intermediate_size = 4 * c.hidden_size;
  // ALiBi has no position table; seq_length is the training context.
  c.max_position_embeddings = optional_field<std::int64_t>(j, "seq_length", 2048);
  c.norm_eps = optional_field<double>(j, "layer_norm_epsilon", 1e-5);
  c.hidden_act = "gelu_new";  // BloomGelu: the tanh approximation
  c.tie_word_embeddings = optional_field<bool>(j, "tie_word_embeddings", true);
  c.attention_bias = c.o_proj_bias = c.mlp_bias = true;
  c.residual_from_norm = optional_field<bool>(j, "apply_residual_connection_post_layernorm", false);
}

void write_bloom_config(const ModelConfig& c, json& j) {
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["n_layer"] = c.num_layers;
  j["n_head"] = c.num_heads;
  j["seq_length"] = c.max_position_embeddings;
  j["layer_norm_epsilon"] = c.norm_eps;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["apply_residual_connection_post_layernorm"] = c.residual_from_norm;
}

}  // namespace

const ModelFamily& bloom_family() {
  static const ModelFamily family{
      {"bloom"},
      PositionKind::kAlibi,
      "transformer.",
      "transformer.h.",
      [](const ModelConfig&) -> std::string { return "BloomForCausalLM"; },
      parse_bloom_config,
      write_bloom_config,
      BloomModel::expected_weights,
      [](ModelConfig config, const WeightSource& weights) -> std::unique_ptr<CausalLM> {
        return std::make_unique<BloomModel>(std::move(config), weights);
      },
  };
  return family;
}

at::Tensor alibi_slopes(std::int64_t heads) {
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const std::int64_t closest = std::int64_t{1} << static_cast<int>(std::floor(std::log2(static_cast<double>(heads))));
  // base^k for k = 1..closest, base = 2^(-2^-(log2(closest) - 3)) = 2^(-8 / closest).
  auto powers_of = [&](std::int64_t n, std::int64_t first, std::int64_t step, std::int64_t count) {
    const double base = std::pow(2.0, -std::pow(2.0, -(std::log2(static_cast<double>(n)) - 3.0)));
    at::Tensor exponents = at::arange(first, first + step * count, step, at::TensorOptions().dtype(at::kInt));
    return at::pow(at::scalar_tensor(base, f32), exponents);
  };
  at::Tensor slopes = powers_of(closest, 1, 1, closest);
  if (closest != heads) {
    const std::int64_t remaining = std::min(closest, heads - closest);
    slopes = at::cat({slopes, powers_of(2 * closest, 1, 2, remaining)});
  }
  return slopes;
}

WeightList BloomModel::expected_weights(const ModelConfig& c) {
  const std::int64_t H = c.hidden_size, F = c.intermediate_size;
  WeightList w;
  auto linear = [&](const std::string& name, std::int64_t out, std::int64_t in) {
    w.push_back({name + ".weight", {out, in}});
    w.push_back({name + ".bias", {out}});
  };
  auto norm = [&](const std::string& name) {
    w.push_back({name + ".weight", {H}});
    w.push_back({name + ".bias", {H}});
  };
  w.push_back({"transformer.word_embeddings.weight", {c.vocab_size, H}});
  norm("transformer.word_embeddings_layernorm");
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = layer_prefix(l);
    norm(p + "input_layernorm");
    linear(p + "self_attention.query_key_value", 3 * H, H);
    linear(p + "self_attention.dense", H, H);
    norm(p + "post_attention_layernorm");
    linear(p + "mlp.dense_h_to_4h", F, H);
    linear(p + "mlp.dense_4h_to_h", H, F);
  }
  norm("transformer.ln_f");
  if (!c.tie_word_embeddings) w.push_back({"lm_head.weight", {c.vocab_size, H}});
  return w;
}

BloomModel::BloomModel(ModelConfig config, const WeightSource& weights) : CausalLM(std::move(config)) {
  const ModelConfig& c = this->config();
  c.validate();
  const WeightFetcher take(expected_weights(c), weights);
  word_embeddings_ = take("transformer.word_embeddings.weight");
  embeddings_norm_ = take.layer_norm("transformer.word_embeddings_layernorm");
  layers_.resize(static_cast<std::size_t>(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = layer_prefix(l);
    BloomLayer& layer = layers_[static_cast<std::size_t>(l)];
    layer.input_norm = take.layer_norm(p + "input_layernorm");
    layer.query_key_value = take.linear(p + "self_attention.query_key_value", true);
    layer.dense = take.linear(p + "self_attention.dense", true);
    layer.post_attention_norm = take.layer_norm(p + "post_attention_layernorm");
    layer.dense_h_to_4h = take.linear(p + "mlp.dense_h_to_4h", true);
    layer.dense_4h_to_h = take.linear(p + "mlp.dense_4h_to_h", true);
  }
  final_norm_ = take.layer_norm("transformer.ln_f");
  lm_head_.weight = c.tie_word_embeddings ? word_embeddings_ : take("lm_head.weight");
  slopes_ = alibi_slopes(c.num_heads).to(word_embeddings_.device());
}

void BloomModel::prepare_positions(ForwardState& state) const {
  // Every key's position, prefix included (padding takes none); softmax ignores the
  // per-query constant, so slope * key position is the bias -slope * (query - key).
  const std::int64_t S = state.past_length + state.length;
  at::Tensor key_positions;  // [B or 1, S]
  if (state.key_valid.defined()) {
    at::Tensor valid = state.key_valid.to(at::kLong);
    key_positions = (valid.cumsum(1) - 1) * valid;
  } else {
    key_positions = at::arange(S, at::TensorOptions().dtype(at::kLong).device(device())).unsqueeze(0);
  }
  state.head_bias = slopes_.view({1, -1, 1, 1}) * key_positions.to(at::kFloat).unsqueeze(1).unsqueeze(1);
}

at::Tensor BloomModel::embed(const at::Tensor& input_ids, const ForwardState&) const {
  return embeddings_norm_(at::embedding(word_embeddings_, input_ids), config().norm_eps);
}

at::Tensor BloomModel::compute_block(int layer, const at::Tensor& hidden, ForwardState& state) const {
  const ModelConfig& c = config();
  const BloomLayer& w = layers_[static_cast<std::size_t>(layer)];
  const std::int64_t B = hidden.size(0), T = hidden.size(1), H = c.num_heads, D = c.head_dim;
  const double eps = c.norm_eps;
  at::Tensor h = at_site(layer, Site::kBlockInput, hidden, state);

  at::Tensor normed = w.input_norm(h, eps);
  at::Tensor x = at_site(layer, Site::kAttnInput, normed, state);
  at::Tensor qkv = w.query_key_value(x).view({B, T, H, 3, D});
  at::Tensor q = qkv.select(3, 0).transpose(1, 2);
  at::Tensor k = qkv.select(3, 1).transpose(1, 2);
  at::Tensor v = qkv.select(3, 2).transpose(1, 2);
  at::Tensor attn = w.dense(attend(layer, q, k, v, state, 1.0 / std::sqrt(static_cast<double>(D))));
  h = (c.residual_from_norm ? normed : h) + attn;

  normed = w.post_attention_norm(h, eps);
  x = at_site(layer, Site::kMlpInput, normed, state);
  x = at_site(layer, Site::kDownProjInput, apply_activation(c.hidden_act, w.dense_h_to_4h(x)), state);
  return (c.residual_from_norm ? normed : h) + w.dense_4h_to_h(x);
}

at::Tensor BloomModel::head(const at::Tensor& hidden, bool last_only) const {
  at::Tensor h = last_only ? hidden.narrow(1, hidden.size(1) - 1, 1) : hidden;
  return lm_head_(final_norm_(h, config().norm_eps)).to(at::kFloat);
}

std::vector<LinearRef> BloomModel::linears() {
  std::vector<LinearRef> refs;
  for (int l = 0; l < config().num_layers; ++l) {
    BloomLayer& w = layers_[static_cast<std::size_t>(l)];
    const std::string p = layer_prefix(l);
    refs.push_back({p + "self_attention.query_key_value", l, Site::kAttnInput, &w.query_key_value});
    refs.push_back({p + "self_attention.dense", l, Site::kOProjInput, &w.dense});
    refs.push_back({p + "mlp.dense_h_to_4h", l, Site::kMlpInput, &w.dense_h_to_4h});
    refs.push_back({p + "mlp.dense_4h_to_h", l, Site::kDownProjInput, &w.dense_4h_to_h});
  }
  return refs;
}

std::vector<std::pair<std::string, at::Tensor*>> BloomModel::named_weights() {
  NamedWeights out;
  auto norm = [&](const std::string& name, LayerNorm& n) { append_layer_norm(out, name, n); };
  out.emplace_back("transformer.word_embeddings.weight", &word_embeddings_);
  norm("transformer.word_embeddings_layernorm", embeddings_norm_);
  for (int l = 0; l < config().num_layers; ++l) {
    norm(layer_prefix(l) + "input_layernorm", layers_[static_cast<std::size_t>(l)].input_norm);
    norm(layer_prefix(l) + "post_attention_layernorm", layers_[static_cast<std::size_t>(l)].post_attention_norm);
  }
  append_linears(out, linears());
  norm("transformer.ln_f", final_norm_);
  if (!config().tie_word_embeddings) out.emplace_back("lm_head.weight", &lm_head_.weight);
  return out;
}

std::vector<SiteProducer> BloomModel::site_producers() {
  const ModelConfig& c = config();
  const auto opts = at::TensorOptions().dtype(at::kLong).device(device());
  const std::int64_t D = c.head_dim;
  // dense's input channel h * D + d is the value of head h: query_key_value row h * 3D + 2D + d.
  at::Tensor channel = at::arange(c.hidden_size, opts);
  at::Tensor value_row = channel.div(D, "floor").mul(3 * D).add(2 * D).add(channel.remainder(D));
  std::vector<SiteProducer> out;
  for (int l = 0; l < c.num_layers; ++l) {
    BloomLayer& w = layers_[static_cast<std::size_t>(l)];
    auto from_norm = [&](Site site, Linear* consumer, LayerNorm& norm) {
      return SiteProducer::from_norm(l, site, {consumer}, &norm.weight, &norm.bias, channel);
    };
    // With the residual taken after the norm, scaling the norm would scale the residual too.
    if (!c.residual_from_norm) out.push_back(from_norm(Site::kAttnInput, &w.query_key_value, w.input_norm));
    out.push_back(SiteProducer::from_linear(l, Site::kOProjInput, {&w.dense}, &w.query_key_value, value_row));
    if (!c.residual_from_norm) out.push_back(from_norm(Site::kMlpInput, &w.dense_h_to_4h, w.post_attention_norm));
    // GELU is not positively homogeneous: dense_4h_to_h's input has no producer to fold into.
  }
  return out;
}

}  // namespace cushioncache
