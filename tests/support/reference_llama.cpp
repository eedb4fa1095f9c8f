#include "support/reference_llama.h"

#include <cmath>

#include <ATen/ATen.h>

namespace cushioncache::testing {

std::vector<double> reference_inverse_frequencies(const ModelConfig& c) {
  std::vector<double> inv;
  for (std::int64_t i = 0; i < c.head_dim / 2; ++i) {
    double f = 1.0 / std::pow(c.rope_theta, 2.0 * static_cast<double>(i) / static_cast<double>(c.head_dim));
    const RopeScaling& r = c.rope_scaling;
    if (r.type == RopeScalingType::kLinear) f /= r.factor;
    if (r.type == RopeScalingType::kLlama3) {
      const double wavelen = 2.0 * M_PI / f;
      const double old_len = static_cast<double>(r.original_max_position_embeddings);
      if (wavelen < old_len / r.high_freq_factor) {
        // high frequency: unchanged
      } else if (wavelen > old_len / r.low_freq_factor) {
        f /= r.factor;
      } else {
        const double smooth = (old_len / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
        f = (1.0 - smooth) * f / r.factor + smooth * f;
      }
    }
    inv.push_back(f);
  }
  return inv;
}

namespace {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  return x / (x.pow(2).mean(-1, true) + eps).sqrt() * w;
}

at::Tensor linear(const HfWeights& w, const std::string& name, const at::Tensor& x) {
  at::Tensor y = x.matmul(w.tensors.at(name + ".weight").to(at::kDouble).t());
  auto bias = w.tensors.find(name + ".bias");
  if (bias != w.tensors.end()) y = y + bias->second.to(at::kDouble);
  return y;
}

// x [T, heads, D]: rotates dimension i with i + D/2 by position * inv_freq[i].
at::Tensor rotate(const at::Tensor& x, const std::vector<double>& inv_freq) {
  at::Tensor out = x.clone();
  const std::int64_t T = x.size(0), half = x.size(2) / 2;
  auto a = x.accessor<double, 3>();
  auto o = out.accessor<double, 3>();
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t h = 0; h < x.size(1); ++h)
      for (std::int64_t i = 0; i < half; ++i) {
        const double angle = static_cast<double>(t) * inv_freq[static_cast<std::size_t>(i)];
        const double x1 = a[t][h][i], x2 = a[t][h][i + half];
        o[t][h][i] = x1 * std::cos(angle) - x2 * std::sin(angle);
        o[t][h][i + half] = x2 * std::cos(angle) + x1 * std::sin(angle);
      }
  return out;
}

}  // namespace

at::Tensor reference_llama_logits(const HfWeights& w, const std::vector<std::int64_t>& ids) {
  const ModelConfig& c = w.config;
  const auto T = static_cast<std::int64_t>(ids.size());
  const std::int64_t H = c.num_heads, Hkv = c.num_kv_heads, D = c.head_dim;
  const auto inv_freq = reference_inverse_frequencies(c);
  at::Tensor x = w.tensors.at("model.embed_tokens.weight").to(at::kDouble).index_select(0, at::tensor(ids, at::kLong));
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    at::Tensor h = rms_norm(x, w.tensors.at(p + "input_layernorm.weight").to(at::kDouble), c.norm_eps);
    at::Tensor q = rotate(linear(w, p + "self_attn.q_proj", h).view({T, H, D}), inv_freq);
    at::Tensor k = rotate(linear(w, p + "self_attn.k_proj", h).view({T, Hkv, D}), inv_freq);
    at::Tensor v = linear(w, p + "self_attn.v_proj", h).view({T, Hkv, D});
    std::vector<at::Tensor> heads;
    for (std::int64_t head = 0; head < H; ++head) {
      const std::int64_t kv = head / (H / Hkv);
      at::Tensor scores = q.select(1, head).matmul(k.select(1, kv).t()) / std::sqrt(static_cast<double>(D));  // [T, T]
      at::Tensor allowed = at::ones({T, T}, at::kBool).tril();
      if (c.sliding_window) allowed = allowed & at::ones({T, T}, at::kBool).triu(-(*c.sliding_window - 1));
      scores = scores.masked_fill(allowed.logical_not(), -INFINITY);
      heads.push_back(at::softmax(scores, -1).matmul(v.select(1, kv)));  // [T, D]
    }
    x = x + linear(w, p + "self_attn.o_proj", at::cat(heads, 1));
    at::Tensor m = rms_norm(x, w.tensors.at(p + "post_attention_layernorm.weight").to(at::kDouble), c.norm_eps);
    at::Tensor gate = linear(w, p + "mlp.gate_proj", m);
    x = x + linear(w, p + "mlp.down_proj", gate * at::sigmoid(gate) * linear(w, p + "mlp.up_proj", m));
  }
  x = rms_norm(x, w.tensors.at("model.norm.weight").to(at::kDouble), c.norm_eps);
  const std::string head = c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  return x.matmul(w.tensors.at(head).to(at::kDouble).t());
}

}  // namespace cushioncache::testing
