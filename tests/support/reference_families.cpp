#include "support/reference_families.h"

#include <cmath>
#include <stdexcept>

#include <ATen/ATen.h>

namespace cushioncache::testing {
namespace {

at::Tensor tensor(const HfWeights& w, const std::string& name) {
  auto it = w.tensors.find(name);
  if (it == w.tensors.end()) throw std::invalid_argument("reference: no tensor " + name);
  return it->second.to(at::kDouble);
}

at::Tensor layer_norm(const HfWeights& w, const std::string& name, const at::Tensor& x, double eps) {
  at::Tensor mean = x.mean(-1, true);
  at::Tensor var = (x - mean).pow(2).mean(-1, true);
  return (x - mean) / (var + eps).sqrt() * tensor(w, name + ".weight") + tensor(w, name + ".bias");
}

// nn.Linear: weight [out, in]. Conv1D: weight [in, out].
at::Tensor linear(const HfWeights& w, const std::string& name, const at::Tensor& x, bool conv1d = false) {
  at::Tensor weight = tensor(w, name + ".weight");
  at::Tensor y = x.matmul(conv1d ? weight : weight.t());
  if (w.tensors.count(name + ".bias")) y = y + tensor(w, name + ".bias");
  return y;
}

at::Tensor act(const std::string& name, const at::Tensor& x) {
  if (name == "relu") return x.clamp_min(0);
  if (name == "gelu") return 0.5 * x * (1 + at::erf(x / std::sqrt(2.0)));
  // gelu_new / BloomGelu
  return 0.5 * x * (1 + at::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x.pow(3))));
}

// q, k, v [T, heads, D]; bias(h, i, j) added to query i's score on key j.
template <typename Bias>
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale, Bias bias) {
  const std::int64_t T = q.size(0), H = q.size(1), D = q.size(2);
  at::Tensor out = at::zeros({T, H, D}, q.options());
  for (std::int64_t h = 0; h < H; ++h)
    for (std::int64_t i = 0; i < T; ++i) {
      at::Tensor scores = (k.select(1, h).narrow(0, 0, i + 1) * q[i][h]).sum(-1) * scale;  // [i + 1]
      for (std::int64_t j = 0; j <= i; ++j) scores[j] += bias(h, i, j);
      at::Tensor p = at::softmax(scores, 0);
      out[i][h] = (p.unsqueeze(1) * v.select(1, h).narrow(0, 0, i + 1)).sum(0);
    }
  return out.reshape({T, H * D});
}

at::Tensor no_bias_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
  return attention(q, k, v, scale, [](std::int64_t, std::int64_t, std::int64_t) { return 0.0; });
}

at::Tensor opt_logits(const HfWeights& w, const at::Tensor& ids) {
  const ModelConfig& c = w.config;
  const std::int64_t T = ids.size(0), H = c.num_heads, D = c.head_dim;
  const double eps = 1e-5;
  at::Tensor x = tensor(w, "model.decoder.embed_tokens.weight").index_select(0, ids);
  if (c.embedding_dim() != c.hidden_size) x = linear(w, "model.decoder.project_in", x);
  x = x + tensor(w, "model.decoder.embed_positions.weight").narrow(0, 2, T);  // offset 2
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.decoder.layers." + std::to_string(l) + ".";
    at::Tensor h = c.norm_before ? layer_norm(w, p + "self_attn_layer_norm", x, eps) : x;
    at::Tensor q = linear(w, p + "self_attn.q_proj", h).view({T, H, D});
    at::Tensor k = linear(w, p + "self_attn.k_proj", h).view({T, H, D});
    at::Tensor v = linear(w, p + "self_attn.v_proj", h).view({T, H, D});
    x = x + linear(w, p + "self_attn.out_proj", no_bias_attention(q, k, v, 1.0 / std::sqrt(D)));
    if (!c.norm_before) x = layer_norm(w, p + "self_attn_layer_norm", x, eps);
    h = c.norm_before ? layer_norm(w, p + "final_layer_norm", x, eps) : x;
    x = x + linear(w, p + "fc2", act(c.hidden_act, linear(w, p + "fc1", h)));
    if (!c.norm_before) x = layer_norm(w, p + "final_layer_norm", x, eps);
  }
  if (c.final_norm) x = layer_norm(w, "model.decoder.final_layer_norm", x, eps);
  if (c.embedding_dim() != c.hidden_size) x = linear(w, "model.decoder.project_out", x);
  const std::string head = c.tie_word_embeddings ? "model.decoder.embed_tokens.weight" : "lm_head.weight";
  return x.matmul(tensor(w, head).t());
}

at::Tensor bloom_logits(const HfWeights& w, const at::Tensor& ids) {
  const ModelConfig& c = w.config;
  const std::int64_t T = ids.size(0), H = c.num_heads, D = c.head_dim;
  const double eps = c.norm_eps;
  at::Tensor x = layer_norm(w, "transformer.word_embeddings_layernorm", tensor(w, "transformer.word_embeddings.weight").index_select(0, ids), eps);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "transformer.h." + std::to_string(l) + ".";
    at::Tensor h = layer_norm(w, p + "input_layernorm", x, eps);
    at::Tensor qkv = linear(w, p + "self_attention.query_key_value", h).view({T, H, 3, D});
    at::Tensor ctx = attention(qkv.select(2, 0), qkv.select(2, 1), qkv.select(2, 2), 1.0 / std::sqrt(D),
                               [&](std::int64_t head, std::int64_t i, std::int64_t j) {
                                 return -reference_alibi_slope(head, H) * static_cast<double>(i - j);
                               });
    x = x + linear(w, p + "self_attention.dense", ctx);
    h = layer_norm(w, p + "post_attention_layernorm", x, eps);
    x = x + linear(w, p + "mlp.dense_4h_to_h", act("gelu_new", linear(w, p + "mlp.dense_h_to_4h", h)));
  }
  x = layer_norm(w, "transformer.ln_f", x, eps);
  return x.matmul(tensor(w, c.tie_word_embeddings ? "transformer.word_embeddings.weight" : "lm_head.weight").t());
}

at::Tensor gpt2_logits(const HfWeights& w, const at::Tensor& ids) {
  const ModelConfig& c = w.config;
  const std::int64_t T = ids.size(0), H = c.num_heads, D = c.head_dim, C = c.hidden_size;
  const double eps = c.norm_eps;
  at::Tensor x = tensor(w, "transformer.wte.weight").index_select(0, ids) + tensor(w, "transformer.wpe.weight").narrow(0, 0, T);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "transformer.h." + std::to_string(l) + ".";
    at::Tensor h = layer_norm(w, p + "ln_1", x, eps);
    at::Tensor qkv = linear(w, p + "attn.c_attn", h, /*conv1d=*/true);  // [T, 3C]: q | k | v
    auto part = [&](int i) { return qkv.narrow(1, i * C, C).view({T, H, D}); };
    double scale = 1.0 / std::sqrt(D);
    if (c.scale_attn_by_inverse_layer_idx) scale /= (l + 1);
    x = x + linear(w, p + "attn.c_proj", no_bias_attention(part(0), part(1), part(2), scale), true);
    h = layer_norm(w, p + "ln_2", x, eps);
    x = x + linear(w, p + "mlp.c_proj", act(c.hidden_act, linear(w, p + "mlp.c_fc", h, true)), true);
  }
  x = layer_norm(w, "transformer.ln_f", x, eps);
  return x.matmul(tensor(w, c.tie_word_embeddings ? "transformer.wte.weight" : "lm_head.weight").t());
}

}  // namespace

double reference_alibi_slope(std::int64_t head, std::int64_t heads) {
  std::int64_t closest = 1;
  while (closest * 2 <= heads) closest *= 2;
  if (head < closest) return std::pow(2.0, -8.0 * static_cast<double>(head + 1) / static_cast<double>(closest));
  const std::int64_t extra = head - closest;  // slopes 1, 3, 5, ... of 2 * closest heads
  return std::pow(2.0, -8.0 * static_cast<double>(2 * extra + 1) / static_cast<double>(2 * closest));
}

at::Tensor reference_family_logits(const HfWeights& weights, const std::vector<std::int64_t>& ids) {
  at::Tensor t = at::tensor(ids, at::kLong);
  const std::string& type = weights.config.model_type;
  if (type == "opt") return opt_logits(weights, t);
  if (type == "bloom") return bloom_logits(weights, t);
  if (type == "gpt2") return gpt2_logits(weights, t);
  throw std::invalid_argument("reference_family_logits: no reference for " + type);
}

}  // namespace cushioncache::testing
