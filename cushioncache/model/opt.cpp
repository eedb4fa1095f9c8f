#include "cushioncache/model/opt.h"

#include <cmath>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/io/json_file.h"

namespace cushioncache {
namespace {
using nlohmann::json;

std::string layer_prefix(int layer) { return fmt::format("model.decoder.layers.{}.", layer); }

// transformers' configuration_opt.py: its defaults where a key is absent.
void parse_opt_config(const json& j, ModelConfig& c) {
  c.vocab_size = required_field<std::int64_t>(j, "vocab_size");
  c.hidden_size = required_field<std::int64_t>(j, "hidden_size");
  c.intermediate_size = required_field<std::int64_t>(j, "ffn_dim");
  c.num_layers = required_field<std::int64_t>(j, "num_hidden_layers");
  c.num_heads = required_field<std::int64_t>(j, "num_attention_heads");
  if (c.num_heads > 0 && c.hidden_size % c.num_heads != 0)
    throw_error(ErrorKind::kInvalidConfig, "hidden_size {} is not divisible by num_attention_heads {}", c.hidden_size, c.num_heads);
  c.num_kv_heads = c.num_heads;
  c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  c.max_position_embeddings = optional_field<std::int64_t>(j, "max_position_embeddings", 2048);
  c.norm_eps = 1e-5;  // nn.LayerNorm's default; OPT's config has no key for it
  c.hidden_act = optional_field<std::string>(j, "activation_function", "relu");
  c.tie_word_embeddings = optional_field<bool>(j, "tie_word_embeddings", true);
  const bool bias = optional_field<bool>(j, "enable_bias", true);
  c.attention_bias = c.o_proj_bias = c.mlp_bias = bias;
  if (!optional_field<bool>(j, "layer_norm_elementwise_affine", true))
    throw_error(ErrorKind::kUnsupported, "OPT with layer_norm_elementwise_affine = false (norms without weights) is not supported");
  c.norm_before = optional_field<bool>(j, "do_layer_norm_before", true);
  c.final_norm = c.norm_before && !optional_field<bool>(j, "_remove_final_layer_norm", false);
  c.word_embed_proj_dim = optional_field<std::int64_t>(j, "word_embed_proj_dim", c.hidden_size);
  if (c.word_embed_proj_dim == c.hidden_size) c.word_embed_proj_dim = 0;
}

void write_opt_config(const ModelConfig& c, json& j) {
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["ffn_dim"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["activation_function"] = c.hidden_act;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["enable_bias"] = c.attention_bias;
  j["do_layer_norm_before"] = c.norm_before;
  j["_remove_final_layer_norm"] = c.norm_before && !c.final_norm;
  j["word_embed_proj_dim"] = c.embedding_dim();
}

}  // namespace

const ModelFamily& opt_family() {
  static const ModelFamily family{
      {"opt"},
      PositionKind::kLearned,
      "model.",
      "model.decoder.layers.",
      [](const ModelConfig&) -> std::string { return "OPTForCausalLM"; },
      parse_opt_config,
      write_opt_config,
      OptModel::expected_weights,
      [](ModelConfig config, const WeightSource& weights) -> std::unique_ptr<CausalLM> {
        return std::make_unique<OptModel>(std::move(config), weights);
      },
  };
  return family;
}

WeightList OptModel::expected_weights(const ModelConfig& c) {
  const std::int64_t H = c.hidden_size, F = c.intermediate_size, E = c.embedding_dim();
  WeightList w;
  w.push_back({"model.decoder.embed_tokens.weight", {c.vocab_size, E}});
  w.push_back({"model.decoder.embed_positions.weight", {c.max_position_embeddings + kPositionOffset, H}});
  if (E != H) {
    w.push_back({"model.decoder.project_in.weight", {H, E}});
    w.push_back({"model.decoder.project_out.weight", {E, H}});
  }
  auto linear = [&](const std::string& name, std::int64_t out, std::int64_t in, bool bias) {
    w.push_back({name + ".weight", {out, in}});
    if (bias) w.push_back({name + ".bias", {out}});
  };
  auto norm = [&](const std::string& name) {
    w.push_back({name + ".weight", {H}});
    w.push_back({name + ".bias", {H}});
  };
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = layer_prefix(l);
    norm(p + "self_attn_layer_norm");
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) linear(p + "self_attn." + proj, H, H, c.attention_bias);
    norm(p + "final_layer_norm");
    linear(p + "fc1", F, H, c.mlp_bias);
    linear(p + "fc2", H, F, c.mlp_bias);
  }
  if (c.final_norm) norm("model.decoder.final_layer_norm");
  if (!c.tie_word_embeddings) w.push_back({"lm_head.weight", {c.vocab_size, E}});
  return w;
}

OptModel::OptModel(ModelConfig config, const WeightSource& weights) : CausalLM(std::move(config)) {
  const ModelConfig& c = this->config();
  c.validate();
  const WeightFetcher take(expected_weights(c), weights);
  embed_tokens_ = take("model.decoder.embed_tokens.weight");
  embed_positions_ = take("model.decoder.embed_positions.weight");
  if (c.embedding_dim() != c.hidden_size) {
    project_in_.weight = take("model.decoder.project_in.weight");
    project_out_.weight = take("model.decoder.project_out.weight");
  }
  layers_.resize(static_cast<std::size_t>(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = layer_prefix(l);
    OptLayer& layer = layers_[static_cast<std::size_t>(l)];
    layer.attn_norm = take.layer_norm(p + "self_attn_layer_norm");
    layer.q_proj = take.linear(p + "self_attn.q_proj", c.attention_bias);
    layer.k_proj = take.linear(p + "self_attn.k_proj", c.attention_bias);
    layer.v_proj = take.linear(p + "self_attn.v_proj", c.attention_bias);
    layer.out_proj = take.linear(p + "self_attn.out_proj", c.attention_bias);
    layer.mlp_norm = take.layer_norm(p + "final_layer_norm");
    layer.fc1 = take.linear(p + "fc1", c.mlp_bias);
    layer.fc2 = take.linear(p + "fc2", c.mlp_bias);
  }
  if (c.final_norm) final_norm_ = take.layer_norm("model.decoder.final_layer_norm");
  lm_head_.weight = c.tie_word_embeddings ? embed_tokens_ : take("lm_head.weight");
}

at::Tensor OptModel::embed(const at::Tensor& input_ids, const ForwardState& state) const {
  at::Tensor x = at::embedding(embed_tokens_, input_ids);
  if (project_in_.weight.defined()) x = project_in_(x);
  // A prefix of length P moves the text to positions P, P + 1, ... (state.positions).
  return x + at::embedding(embed_positions_, state.positions + kPositionOffset);
}

at::Tensor OptModel::compute_block(int layer, const at::Tensor& hidden, ForwardState& state) const {
  const ModelConfig& c = config();
  const OptLayer& w = layers_[static_cast<std::size_t>(layer)];
  const std::int64_t B = hidden.size(0), T = hidden.size(1), H = c.num_heads, D = c.head_dim;
  const double eps = c.norm_eps;
  at::Tensor h = at_site(layer, Site::kBlockInput, hidden, state);

  at::Tensor x = at_site(layer, Site::kAttnInput, c.norm_before ? w.attn_norm(h, eps) : h, state);
  at::Tensor q = w.q_proj(x).view({B, T, H, D}).transpose(1, 2);
  at::Tensor k = w.k_proj(x).view({B, T, H, D}).transpose(1, 2);
  at::Tensor v = w.v_proj(x).view({B, T, H, D}).transpose(1, 2);
  h = h + w.out_proj(attend(layer, q, k, v, state, 1.0 / std::sqrt(static_cast<double>(D))));
  if (!c.norm_before) h = w.attn_norm(h, eps);

  x = at_site(layer, Site::kMlpInput, c.norm_before ? w.mlp_norm(h, eps) : h, state);
  x = at_site(layer, Site::kDownProjInput, apply_activation(c.hidden_act, w.fc1(x)), state);
  h = h + w.fc2(x);
  if (!c.norm_before) h = w.mlp_norm(h, eps);
  return h;
}

at::Tensor OptModel::head(const at::Tensor& hidden, bool last_only) const {
  at::Tensor h = last_only ? hidden.narrow(1, hidden.size(1) - 1, 1) : hidden;
  if (final_norm_.weight.defined()) h = final_norm_(h, config().norm_eps);
  if (project_out_.weight.defined()) h = project_out_(h);
  return lm_head_(h).to(at::kFloat);
}

std::vector<LinearRef> OptModel::linears() {
  std::vector<LinearRef> refs;
  for (int l = 0; l < config().num_layers; ++l) {
    OptLayer& w = layers_[static_cast<std::size_t>(l)];
    const std::string p = layer_prefix(l);
    refs.push_back({p + "self_attn.q_proj", l, Site::kAttnInput, &w.q_proj});
    refs.push_back({p + "self_attn.k_proj", l, Site::kAttnInput, &w.k_proj});
    refs.push_back({p + "self_attn.v_proj", l, Site::kAttnInput, &w.v_proj});
    refs.push_back({p + "self_attn.out_proj", l, Site::kOProjInput, &w.out_proj});
    refs.push_back({p + "fc1", l, Site::kMlpInput, &w.fc1});
    refs.push_back({p + "fc2", l, Site::kDownProjInput, &w.fc2});
  }
  return refs;
}

std::vector<std::pair<std::string, at::Tensor*>> OptModel::named_weights() {
  std::vector<std::pair<std::string, at::Tensor*>> out;
  out.emplace_back("model.decoder.embed_tokens.weight", &embed_tokens_);
  out.emplace_back("model.decoder.embed_positions.weight", &embed_positions_);
  if (project_in_.weight.defined()) {
    out.emplace_back("model.decoder.project_in.weight", &project_in_.weight);
    out.emplace_back("model.decoder.project_out.weight", &project_out_.weight);
  }
  for (int l = 0; l < config().num_layers; ++l) {
    OptLayer& w = layers_[static_cast<std::size_t>(l)];
    const std::string p = layer_prefix(l);
    append_layer_norm(out, p + "self_attn_layer_norm", w.attn_norm);
    append_layer_norm(out, p + "final_layer_norm", w.mlp_norm);
  }
  append_linears(out, linears());
  if (final_norm_.weight.defined()) append_layer_norm(out, "model.decoder.final_layer_norm", final_norm_);
  if (!config().tie_word_embeddings) out.emplace_back("lm_head.weight", &lm_head_.weight);
  return out;
}

std::vector<SiteProducer> OptModel::site_producers() {
  const ModelConfig& c = config();
  const auto opts = at::TensorOptions().dtype(at::kLong).device(device());
  at::Tensor hidden = at::arange(c.hidden_size, opts);
  std::vector<SiteProducer> out;
  for (int l = 0; l < c.num_layers; ++l) {
    OptLayer& w = layers_[static_cast<std::size_t>(l)];
    // After-norm layers (opt-350m) feed the blocks the residual stream itself: no single
    // producer to fold a scale into.
    if (c.norm_before)
      out.push_back(SiteProducer::from_norm(l, Site::kAttnInput, {&w.q_proj, &w.k_proj, &w.v_proj}, &w.attn_norm.weight,
                                            &w.attn_norm.bias, hidden));
    out.push_back(SiteProducer::from_linear(l, Site::kOProjInput, {&w.out_proj}, &w.v_proj, hidden));
    if (c.norm_before)
      out.push_back(SiteProducer::from_norm(l, Site::kMlpInput, {&w.fc1}, &w.mlp_norm.weight, &w.mlp_norm.bias, hidden));
    // ReLU(x / s) = ReLU(x) / s: fc2's input scale folds into fc1's rows.
    if (is_positively_homogeneous(c.hidden_act))
      out.push_back(SiteProducer::from_linear(l, Site::kDownProjInput, {&w.fc2}, &w.fc1, at::arange(c.intermediate_size, opts)));
  }
  return out;
}

}  // namespace cushioncache
