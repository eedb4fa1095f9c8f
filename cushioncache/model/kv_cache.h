// Key/value caches: the prefix KV that CushionCache searches and tunes (positions
// 0..P-1, may carry autograd), and the growing cache of incremental decoding. Both are
// the same type: text after the cache starts at position P.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace cushioncache {

struct ModelConfig;

struct LayerKV {
  at::Tensor key;    // [B or 1, kv_heads, S, head_dim], keys after RoPE
  at::Tensor value;  // [B or 1, kv_heads, S, head_dim]
};

struct KVCache {
  std::vector<LayerKV> layers;
  // [B, S] bool, false at padded positions; undefined when every position is real.
  at::Tensor valid;
  // [B or 1, S] int64: the tokens the cache was computed from; undefined when unknown.
  // Kept when the keys and values are tuned: they still say which prefix they started as.
  at::Tensor tokens;
  // The model's value basis when the values were computed (CausalLM::value_basis): 0 for
  // an unchanged model and for caches read from files, which hold float-model values.
  std::uint64_t value_basis = 0;

  bool empty() const { return layers.empty(); }
  std::int64_t length() const;      // S (0 when empty)
  std::int64_t batch_size() const;  // 1 for a prefix shared by every row

  // Throws kMismatch naming the layer and tensor if the cache does not fit the model.
  void check_compatible(const ModelConfig& config) const;

  // The same cache with tensors detached from autograd (e.g. to save a tuned prefix).
  KVCache detached() const;

  // Rows `rows` (int64 indices into the batch) of every tensor, in that order; repeated
  // indices copy a row, so one context can serve several continuations.
  KVCache select_rows(const at::Tensor& rows) const;
};

}  // namespace cushioncache
