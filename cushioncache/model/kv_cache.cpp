#include "cushioncache/model/kv_cache.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cushioncache/core/error.h"
#include "cushioncache/model/config.h"

namespace cushioncache {

std::int64_t KVCache::length() const { return layers.empty() ? 0 : layers.front().key.size(2); }

std::int64_t KVCache::batch_size() const { return layers.empty() ? 0 : layers.front().key.size(0); }

void KVCache::check_compatible(const ModelConfig& config) const {
  if (static_cast<std::int64_t>(layers.size()) != config.num_layers)
    throw_error(ErrorKind::kMismatch, "KV cache has {} layers, the model {}", layers.size(), config.num_layers);
  const std::int64_t batch = batch_size(), len = length();
  const std::vector<std::int64_t> expected{batch, config.num_kv_heads, len, config.head_dim};
  auto check = [&](std::size_t layer, const char* name, const at::Tensor& t) {
    if (!t.defined()) throw_error(ErrorKind::kMismatch, "KV cache layer {} {} is undefined", layer, name);
    if (t.sizes().vec() != expected)
      throw_error(ErrorKind::kMismatch, "KV cache layer {} {} has shape [{}], expected [{}]", layer, name,
                  fmt::join(t.sizes(), ", "), fmt::join(expected, ", "));
  };
  for (std::size_t l = 0; l < layers.size(); ++l) {
    check(l, "key", layers[l].key);
    check(l, "value", layers[l].value);
  }
  if (valid.defined() && (valid.dim() != 2 || valid.size(1) != len))
    throw_error(ErrorKind::kMismatch, "KV cache validity mask has shape [{}], expected [B, {}]", fmt::join(valid.sizes(), ", "), len);
  if (tokens.defined() && (tokens.dim() != 2 || tokens.size(1) != len))
    throw_error(ErrorKind::kMismatch, "KV cache tokens have shape [{}], expected [B, {}]", fmt::join(tokens.sizes(), ", "), len);
}

KVCache KVCache::detached() const {
  KVCache out;
  out.layers.reserve(layers.size());
  for (const auto& l : layers) out.layers.push_back({l.key.detach(), l.value.detach()});
  if (valid.defined()) out.valid = valid;
  out.tokens = tokens;
  out.value_basis = value_basis;
  return out;
}

KVCache KVCache::select_rows(const at::Tensor& rows) const {
  KVCache out;
  out.layers.reserve(layers.size());
  for (const auto& l : layers) {
    const at::Tensor index = rows.to(l.key.device(), at::kLong);
    out.layers.push_back({l.key.index_select(0, index), l.value.index_select(0, index)});
  }
  if (valid.defined()) out.valid = valid.index_select(0, rows.to(valid.device(), at::kLong));
  if (tokens.defined()) out.tokens = tokens.size(0) == 1 ? tokens : tokens.index_select(0, rows.to(tokens.device(), at::kLong));
  out.value_basis = value_basis;
  return out;
}

}  // namespace cushioncache
