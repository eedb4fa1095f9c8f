#include "cushioncache/model/llama.h"

#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/io/json_file.h"

namespace cushioncache {
namespace {

std::string layer_prefix(int layer) { return fmt::format("model.layers.{}.", layer); }

at::Tensor rotate_half(const at::Tensor& x) {
  const std::int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

using nlohmann::json;

RopeScaling parse_rope_scaling(const json& spec) {
  RopeScaling r;
  if (spec.is_null()) return r;
  if (!spec.is_object()) throw_error(ErrorKind::kInvalidConfig, "field 'rope_scaling' must be an object");
  std::string type = optional_field<std::string>(spec, "rope_type", optional_field<std::string>(spec, "type", "default"));
  if (type == "default") return r;
  r.factor = required_field<double>(spec, "factor");
  if (!(r.factor >= 1.0)) throw_error(ErrorKind::kInvalidConfig, "rope_scaling.factor = {} must be >= 1", r.factor);
  if (type == "linear") {
    r.type = RopeScalingType::kLinear;
  } else if (type == "llama3") {
    r.type = RopeScalingType::kLlama3;
    r.low_freq_factor = required_field<double>(spec, "low_freq_factor");
    r.high_freq_factor = required_field<double>(spec, "high_freq_factor");
    r.original_max_position_embeddings = required_field<std::int64_t>(spec, "original_max_position_embeddings");
    if (!(r.high_freq_factor > r.low_freq_factor))
      throw_error(ErrorKind::kInvalidConfig, "rope_scaling.high_freq_factor must exceed low_freq_factor");
  } else {
    throw_error(ErrorKind::kUnsupported, "rope_scaling type '{}' is not supported (default, linear, llama3 are)", type);
  }
  return r;
}

// LLaMA, Mistral and Qwen2 configs (transformers' configuration_llama.py and siblings).
void parse_llama_config(const json& j, ModelConfig& c) {
  c.hidden_act = optional_field<std::string>(j, "hidden_act", "silu");
  if (c.hidden_act != "silu") throw_error(ErrorKind::kUnsupported, "hidden_act '{}' (the LLaMA family uses silu)", c.hidden_act);
  c.vocab_size = required_field<std::int64_t>(j, "vocab_size");
  c.hidden_size = required_field<std::int64_t>(j, "hidden_size");
  c.intermediate_size = required_field<std::int64_t>(j, "intermediate_size");
  c.num_layers = required_field<std::int64_t>(j, "num_hidden_layers");
  c.num_heads = required_field<std::int64_t>(j, "num_attention_heads");
  c.num_kv_heads = optional_field<std::int64_t>(j, "num_key_value_heads", c.num_heads);
  c.head_dim = optional_field<std::int64_t>(j, "head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.max_position_embeddings = optional_field<std::int64_t>(j, "max_position_embeddings", 2048);
  c.norm_eps = optional_field<double>(j, "rms_norm_eps", 1e-6);
  c.tie_word_embeddings = optional_field<bool>(j, "tie_word_embeddings", false);

  // transformers 5 moves rope_theta and the scaling into "rope_parameters".
  json rope = j.value("rope_parameters", json());
  if (!rope.is_null() && !rope.is_object()) throw_error(ErrorKind::kInvalidConfig, "field 'rope_parameters' must be an object");
  c.rope_theta = optional_field<double>(j, "rope_theta", rope.is_object() ? optional_field<double>(rope, "rope_theta", 10000.0) : 10000.0);
  c.rope_scaling = parse_rope_scaling(j.value("rope_scaling", rope));

  if (c.model_type == "qwen2") {
    c.attention_bias = true;  // Qwen2 always has q/k/v biases and none on o_proj
    if (optional_field<bool>(j, "use_sliding_window", false))
      throw_error(ErrorKind::kUnsupported, "Qwen2 use_sliding_window (per-layer windows) is not supported");
  } else {
    c.attention_bias = optional_field<bool>(j, "attention_bias", false);
    c.o_proj_bias = c.attention_bias;
    c.mlp_bias = optional_field<bool>(j, "mlp_bias", false);
  }
  if (c.model_type == "mistral") {
    auto w = j.find("sliding_window");
    if (w != j.end() && !w->is_null()) c.sliding_window = required_field<std::int64_t>(j, "sliding_window");
  }
}

void write_llama_config(const ModelConfig& c, json& j) {
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.model_type == "llama") {
    j["attention_bias"] = c.attention_bias;
    j["mlp_bias"] = c.mlp_bias;
  }
  if (c.sliding_window) j["sliding_window"] = *c.sliding_window;
  switch (c.rope_scaling.type) {
    case RopeScalingType::kNone: j["rope_scaling"] = nullptr; break;
    case RopeScalingType::kLinear: j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_scaling.factor}}; break;
    case RopeScalingType::kLlama3:
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", c.rope_scaling.factor},
                           {"low_freq_factor", c.rope_scaling.low_freq_factor},
                           {"high_freq_factor", c.rope_scaling.high_freq_factor},
                           {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
      break;
  }
}

std::string llama_architecture(const ModelConfig& c) {
  if (c.model_type == "mistral") return "MistralForCausalLM";
  if (c.model_type == "qwen2") return "Qwen2ForCausalLM";
  return "LlamaForCausalLM";
}

}  // namespace

const ModelFamily& llama_family() {
  static const ModelFamily family{
      {"llama", "mistral", "qwen2"},
      PositionKind::kRotary,
      "model.",
      "model.layers.",
      llama_architecture,
      parse_llama_config,
      write_llama_config,
      LlamaModel::expected_weights,
      [](ModelConfig config, const WeightSource& weights) -> std::unique_ptr<CausalLM> {
        return std::make_unique<LlamaModel>(std::move(config), weights);
      },
  };
  return family;
}

at::Tensor rope_inverse_frequencies(const ModelConfig& config) {
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  at::Tensor exponent = at::arange(0, config.head_dim, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) /
                        static_cast<double>(config.head_dim);
  at::Tensor inv_freq = 1.0 / at::pow(config.rope_theta, exponent);
  const RopeScaling& r = config.rope_scaling;
  switch (r.type) {
    case RopeScalingType::kNone: break;
    case RopeScalingType::kLinear: inv_freq = inv_freq / r.factor; break;
    case RopeScalingType::kLlama3: {
      // Long wavelengths are slowed by `factor`, short ones kept, the band between
      // interpolated (LLaMA-3.1's rope_scaling).
      const double old_len = static_cast<double>(r.original_max_position_embeddings);
      const double low_freq_wavelen = old_len / r.low_freq_factor;
      const double high_freq_wavelen = old_len / r.high_freq_factor;
      at::Tensor wavelen = 2.0 * M_PI / inv_freq;
      at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / r.factor, inv_freq);
      at::Tensor smooth = (old_len / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
      at::Tensor smoothed = (1 - smooth) * scaled / r.factor + smooth * scaled;
      at::Tensor medium = wavelen.ge(high_freq_wavelen) & wavelen.le(low_freq_wavelen);
      inv_freq = at::where(medium, smoothed, scaled);
      break;
    }
  }
  return inv_freq.to(f32);
}

WeightList LlamaModel::expected_weights(const ModelConfig& c) {
  const std::int64_t q_out = c.num_heads * c.head_dim, kv_out = c.num_kv_heads * c.head_dim;
  WeightList w;
  w.push_back({"model.embed_tokens.weight", {c.vocab_size, c.hidden_size}});
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = layer_prefix(l);
    w.push_back({p + "input_layernorm.weight", {c.hidden_size}});
    w.push_back({p + "self_attn.q_proj.weight", {q_out, c.hidden_size}});
    w.push_back({p + "self_attn.k_proj.weight", {kv_out, c.hidden_size}});
    w.push_back({p + "self_attn.v_proj.weight", {kv_out, c.hidden_size}});
    w.push_back({p + "self_attn.o_proj.weight", {c.hidden_size, q_out}});
    if (c.attention_bias) {
      w.push_back({p + "self_attn.q_proj.bias", {q_out}});
      w.push_back({p + "self_attn.k_proj.bias", {kv_out}});
      w.push_back({p + "self_attn.v_proj.bias", {kv_out}});
    }
    if (c.o_proj_bias) w.push_back({p + "self_attn.o_proj.bias", {c.hidden_size}});
    w.push_back({p + "post_attention_layernorm.weight", {c.hidden_size}});
    w.push_back({p + "mlp.gate_proj.weight", {c.intermediate_size, c.hidden_size}});
    w.push_back({p + "mlp.up_proj.weight", {c.intermediate_size, c.hidden_size}});
    w.push_back({p + "mlp.down_proj.weight", {c.hidden_size, c.intermediate_size}});
    if (c.mlp_bias) {
      w.push_back({p + "mlp.gate_proj.bias", {c.intermediate_size}});
      w.push_back({p + "mlp.up_proj.bias", {c.intermediate_size}});
      w.push_back({p + "mlp.down_proj.bias", {c.hidden_size}});
    }
  }
  w.push_back({"model.norm.weight", {c.hidden_size}});
  if (!c.tie_word_embeddings) w.push_back({"lm_head.weight", {c.vocab_size, c.hidden_size}});
  return w;
}

LlamaModel::LlamaModel(ModelConfig config, const WeightSource& weights) : CausalLM(std::move(config)) {
  const ModelConfig& c = this->config();
  c.validate();
  const WeightFetcher take(expected_weights(c), weights);
  embed_tokens_ = take("model.embed_tokens.weight");
  layers_.resize(static_cast<std::size_t>(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = layer_prefix(l);
    LlamaLayer& layer = layers_[static_cast<std::size_t>(l)];
    layer.input_norm = take(p + "input_layernorm.weight");
    layer.q_proj = take.linear(p + "self_attn.q_proj", c.attention_bias);
    layer.k_proj = take.linear(p + "self_attn.k_proj", c.attention_bias);
    layer.v_proj = take.linear(p + "self_attn.v_proj", c.attention_bias);
    layer.o_proj = take.linear(p + "self_attn.o_proj", c.o_proj_bias);
    layer.post_attention_norm = take(p + "post_attention_layernorm.weight");
    layer.gate_proj = take.linear(p + "mlp.gate_proj", c.mlp_bias);
    layer.up_proj = take.linear(p + "mlp.up_proj", c.mlp_bias);
    layer.down_proj = take.linear(p + "mlp.down_proj", c.mlp_bias);
  }
  final_norm_ = take("model.norm.weight");
  lm_head_.weight = c.tie_word_embeddings ? embed_tokens_ : take("lm_head.weight");
  inv_freq_ = rope_inverse_frequencies(c).to(embed_tokens_.device());
}

void LlamaModel::prepare_positions(ForwardState& state) const {
  // [B, T, D/2] angles in float32, duplicated for the two halves, cast to the model dtype.
  at::Tensor angles = state.positions.to(at::kFloat).unsqueeze(-1) * inv_freq_.view({1, 1, -1});
  at::Tensor table = at::cat({angles, angles}, -1).unsqueeze(1);
  state.rope_cos = table.cos().to(dtype());
  state.rope_sin = table.sin().to(dtype());
}

at::Tensor LlamaModel::rms_norm(const at::Tensor& x, const at::Tensor& weight) const {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor normed = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + config().norm_eps);
  return weight * normed.to(x.scalar_type());
}

at::Tensor LlamaModel::embed(const at::Tensor& input_ids, const ForwardState&) const {
  return at::embedding(embed_tokens_, input_ids);
}

at::Tensor LlamaModel::attention(int layer, const at::Tensor& x, ForwardState& state) const {
  const ModelConfig& c = config();
  const LlamaLayer& w = layers_[static_cast<std::size_t>(layer)];
  const std::int64_t B = x.size(0), T = x.size(1), H = c.num_heads, Hkv = c.num_kv_heads, D = c.head_dim;
  at::Tensor q = w.q_proj(x).view({B, T, H, D}).transpose(1, 2);
  at::Tensor k = w.k_proj(x).view({B, T, Hkv, D}).transpose(1, 2);
  at::Tensor v = w.v_proj(x).view({B, T, Hkv, D}).transpose(1, 2);
  q = q * state.rope_cos + rotate_half(q) * state.rope_sin;
  k = k * state.rope_cos + rotate_half(k) * state.rope_sin;
  return w.o_proj(attend(layer, q, k, v, state, 1.0 / std::sqrt(static_cast<double>(D))));
}

at::Tensor LlamaModel::compute_block(int layer, const at::Tensor& hidden, ForwardState& state) const {
  const LlamaLayer& w = layers_[static_cast<std::size_t>(layer)];
  at::Tensor h = at_site(layer, Site::kBlockInput, hidden, state);
  at::Tensor attn_in = at_site(layer, Site::kAttnInput, rms_norm(h, w.input_norm), state);
  h = h + attention(layer, attn_in, state);
  at::Tensor mlp_in = at_site(layer, Site::kMlpInput, rms_norm(h, w.post_attention_norm), state);
  at::Tensor down_in = at_site(layer, Site::kDownProjInput, at::silu(w.gate_proj(mlp_in)) * w.up_proj(mlp_in), state);
  return h + w.down_proj(down_in);
}

at::Tensor LlamaModel::head(const at::Tensor& hidden, bool last_only) const {
  at::Tensor h = last_only ? hidden.narrow(1, hidden.size(1) - 1, 1) : hidden;
  return lm_head_(rms_norm(h, final_norm_)).to(at::kFloat);
}

std::vector<LinearRef> LlamaModel::linears() {
  std::vector<LinearRef> refs;
  for (int l = 0; l < config().num_layers; ++l) {
    LlamaLayer& w = layers_[static_cast<std::size_t>(l)];
    const std::string p = layer_prefix(l);
    refs.push_back({p + "self_attn.q_proj", l, Site::kAttnInput, &w.q_proj});
    refs.push_back({p + "self_attn.k_proj", l, Site::kAttnInput, &w.k_proj});
    refs.push_back({p + "self_attn.v_proj", l, Site::kAttnInput, &w.v_proj});
    refs.push_back({p + "self_attn.o_proj", l, Site::kOProjInput, &w.o_proj});
    refs.push_back({p + "mlp.gate_proj", l, Site::kMlpInput, &w.gate_proj});
    refs.push_back({p + "mlp.up_proj", l, Site::kMlpInput, &w.up_proj});
    refs.push_back({p + "mlp.down_proj", l, Site::kDownProjInput, &w.down_proj});
  }
  return refs;
}

std::vector<std::pair<std::string, at::Tensor*>> LlamaModel::named_weights() {
  std::vector<std::pair<std::string, at::Tensor*>> out;
  out.emplace_back("model.embed_tokens.weight", &embed_tokens_);
  for (int l = 0; l < config().num_layers; ++l) {
    LlamaLayer& w = layers_[static_cast<std::size_t>(l)];
    const std::string p = layer_prefix(l);
    out.emplace_back(p + "input_layernorm.weight", &w.input_norm);
    out.emplace_back(p + "post_attention_layernorm.weight", &w.post_attention_norm);
  }
  append_linears(out, linears());
  out.emplace_back("model.norm.weight", &final_norm_);
  if (!config().tie_word_embeddings) out.emplace_back("lm_head.weight", &lm_head_.weight);
  return out;
}

std::vector<SiteProducer> LlamaModel::site_producers() {
  const ModelConfig& c = config();
  const auto device = at::TensorOptions().dtype(at::kLong).device(embed_tokens_.device());
  // o_proj's input channel h * D + d comes from v_proj row (h / G) * D + d: with grouped-
  // query attention, G query heads share one value head.
  const std::int64_t D = c.head_dim, G = c.num_heads / c.num_kv_heads;
  at::Tensor channel = at::arange(c.num_heads * D, device);
  at::Tensor value_row = channel.div(G * D, "floor").mul(D).add(channel.remainder(D));
  std::vector<SiteProducer> out;
  for (int l = 0; l < c.num_layers; ++l) {
    LlamaLayer& w = layers_[static_cast<std::size_t>(l)];
    at::Tensor hidden = at::arange(c.hidden_size, device);
    out.push_back(SiteProducer::from_norm(l, Site::kAttnInput, {&w.q_proj, &w.k_proj, &w.v_proj}, &w.input_norm, nullptr, hidden));
    out.push_back(SiteProducer::from_linear(l, Site::kOProjInput, {&w.o_proj}, &w.v_proj, value_row));
    out.push_back(SiteProducer::from_norm(l, Site::kMlpInput, {&w.gate_proj, &w.up_proj}, &w.post_attention_norm, nullptr, hidden));
    // down_proj reads silu(gate) * up: scaling up's rows scales the product.
    out.push_back(SiteProducer::from_linear(l, Site::kDownProjInput, {&w.down_proj}, &w.up_proj, at::arange(c.intermediate_size, device)));
  }
  return out;
}

}  // namespace cushioncache
