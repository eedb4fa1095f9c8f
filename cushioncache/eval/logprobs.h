// The one place where evaluation turns token ids into log-probabilities: the blocks run
// once over a padded batch (after an optional cached prefix), and the LM head runs only
// on the positions that are scored, in chunks, so a 128K vocabulary never materialises
// [batch, length, vocab] logits.
#pragma once

#include <ATen/core/Tensor.h>

#include "cushioncache/model/causal_lm.h"

namespace cushioncache {

struct ScoredPositions {
  at::Tensor logprobs;  // [K] float64: log p(target_k | tokens before position_k + 1)
  at::Tensor greedy;    // [K] bool: target_k is the argmax at its position
};

// ids [B, T] (right-padded, mask [B, T] or undefined), prefix KV or nullptr. For each k,
// the logits at (rows[k], positions[k]) score targets[k]. Runs without autograd. With
// cache_out, also returns the KV cache of prefix ++ ids (with its validity mask).
ScoredPositions score_positions(CausalLM& model, const at::Tensor& ids, const at::Tensor& mask, const KVCache* prefix,
                                const at::Tensor& rows, const at::Tensor& positions, const at::Tensor& targets,
                                KVCache* cache_out = nullptr);

}  // namespace cushioncache
