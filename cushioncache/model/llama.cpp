#include "cushioncache/model/llama.h"

#include <cmath>
#include <limits>
#include <map>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "cushioncache/core/error.h"

namespace cushioncache {
namespace {

std::string layer_prefix(int layer) { return fmt::format("model.layers.{}.", layer); }

at::Tensor rotate_half(const at::Tensor& x) {
  const std::int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

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

std::vector<std::pair<std::string, std::vector<std::int64_t>>> LlamaModel::expected_weights(const ModelConfig& c) {
  const std::int64_t q_out = c.num_heads * c.head_dim, kv_out = c.num_kv_heads * c.head_dim;
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> w;
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
  std::map<std::string, std::vector<std::int64_t>> shapes;
  for (auto& [name, shape] : expected_weights(c)) shapes.emplace(name, shape);
  auto take = [&](const std::string& name) { return weights(name, shapes.at(name)); };
  auto linear = [&](const std::string& name, bool bias) {
    Linear l;
    l.weight = take(name + ".weight");
    if (bias) l.bias = take(name + ".bias");
    return l;
  };

  embed_tokens_ = take("model.embed_tokens.weight");
  layers_.resize(static_cast<std::size_t>(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = layer_prefix(l);
    LlamaLayer& layer = layers_[static_cast<std::size_t>(l)];
    layer.input_norm = take(p + "input_layernorm.weight");
    layer.q_proj = linear(p + "self_attn.q_proj", c.attention_bias);
    layer.k_proj = linear(p + "self_attn.k_proj", c.attention_bias);
    layer.v_proj = linear(p + "self_attn.v_proj", c.attention_bias);
    layer.o_proj = linear(p + "self_attn.o_proj", c.o_proj_bias);
    layer.post_attention_norm = take(p + "post_attention_layernorm.weight");
    layer.gate_proj = linear(p + "mlp.gate_proj", c.mlp_bias);
    layer.up_proj = linear(p + "mlp.up_proj", c.mlp_bias);
    layer.down_proj = linear(p + "mlp.down_proj", c.mlp_bias);
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
  at::Tensor normed = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + config().rms_norm_eps);
  return weight * normed.to(x.scalar_type());
}

at::Tensor LlamaModel::embed(const at::Tensor& input_ids, const ForwardState&) const {
  return at::embedding(embed_tokens_, input_ids);
}

at::Tensor LlamaModel::attention(int layer, const at::Tensor& x, ForwardState& state) const {
  const ModelConfig& c = config();
  const LlamaLayer& w = layers_[static_cast<std::size_t>(layer)];
  const std::int64_t B = x.size(0), T = x.size(1), H = c.num_heads, Hkv = c.num_kv_heads, D = c.head_dim;
  const std::int64_t G = H / Hkv;

  at::Tensor q = w.q_proj(x).view({B, T, H, D}).transpose(1, 2);
  at::Tensor k = w.k_proj(x).view({B, T, Hkv, D}).transpose(1, 2);
  at::Tensor v = w.v_proj(x).view({B, T, Hkv, D}).transpose(1, 2);
  q = q * state.rope_cos + rotate_half(q) * state.rope_sin;
  k = k * state.rope_cos + rotate_half(k) * state.rope_sin;
  q = at_site(layer, Site::kQuery, q, state);
  k = at_site(layer, Site::kKey, k, state);
  v = at_site(layer, Site::kValue, v, state);

  if (state.past != nullptr) {
    const LayerKV& past = state.past->layers[static_cast<std::size_t>(layer)];
    const std::int64_t P = past.key.size(2);
    k = at::cat({past.key.to(k.scalar_type()).expand({B, Hkv, P, D}), k}, 2);
    v = at::cat({past.value.to(v.scalar_type()).expand({B, Hkv, P, D}), v}, 2);
  }
  if (state.collect_cache) state.cache.layers[static_cast<std::size_t>(layer)] = {k, v};
  const std::int64_t S = k.size(2);

  // Grouped-query attention without copying K/V per query head: the G query heads that
  // share a KV head are stacked along the sequence axis of one matmul. The scale goes on
  // q (T rows) rather than on the scores (T x S).
  at::Tensor qg = (q * (1.0 / std::sqrt(static_cast<double>(D)))).reshape({B, Hkv, G * T, D});
  // In place: no backward formula needs the matmul's output.
  at::Tensor scores = at::matmul(qg, k.transpose(-1, -2)).view({B, Hkv, G, T, S}).to(at::kFloat);
  scores.add_(state.attn_bias.unsqueeze(1));
  at::Tensor probs = at::softmax(scores, -1).to(q.scalar_type());
  probs = at_site(layer, Site::kAttnProbs, probs.view({B, H, T, S}), state);
  at::Tensor out = at::matmul(probs.view({B, Hkv, G * T, S}), v);  // [B, Hkv, G*T, D]
  out = out.view({B, H, T, D}).transpose(1, 2).reshape({B, T, H * D});
  out = at_site(layer, Site::kOProjInput, out, state);
  return w.o_proj(out);
}

at::Tensor LlamaModel::run_block(int layer, const at::Tensor& hidden, ForwardState& state) const {
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
  for (const LinearRef& ref : linears()) {
    out.emplace_back(ref.name + ".weight", &ref.linear->weight);
    if (ref.linear->bias.defined()) out.emplace_back(ref.name + ".bias", &ref.linear->bias);
  }
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
  auto producer = [](int layer, Site site, std::vector<Linear*> consumers, at::Tensor* norm, Linear* linear, at::Tensor row) {
    SiteProducer p;
    p.layer = layer;
    p.site = site;
    p.consumers = std::move(consumers);
    p.norm_weight = norm;
    p.producer = linear;
    p.producer_row = std::move(row);
    return p;
  };
  std::vector<SiteProducer> out;
  for (int l = 0; l < c.num_layers; ++l) {
    LlamaLayer& w = layers_[static_cast<std::size_t>(l)];
    at::Tensor hidden = at::arange(c.hidden_size, device);
    out.push_back(producer(l, Site::kAttnInput, {&w.q_proj, &w.k_proj, &w.v_proj}, &w.input_norm, nullptr, hidden));
    out.push_back(producer(l, Site::kOProjInput, {&w.o_proj}, nullptr, &w.v_proj, value_row));
    out.push_back(producer(l, Site::kMlpInput, {&w.gate_proj, &w.up_proj}, &w.post_attention_norm, nullptr, hidden));
    // down_proj reads silu(gate) * up: scaling up's rows scales the product.
    out.push_back(producer(l, Site::kDownProjInput, {&w.down_proj}, nullptr, &w.up_proj, at::arange(c.intermediate_size, device)));
  }
  return out;
}

}  // namespace cushioncache
