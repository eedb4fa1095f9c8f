// Perplexity as GPTQ-style scripts compute it: the corpus is tokenized once, cut into
// non-overlapping windows of seq_len tokens (the remainder is dropped), every window
// token but the first is scored, and PPL = exp(mean NLL over all scored tokens). A
// cached prefix, when given, is placed before every window and never scored.
#pragma once

#include <cstdint>
#include <vector>

#include "cushioncache/model/causal_lm.h"

namespace cushioncache {

struct PerplexityOptions {
  std::int64_t seq_len = 2048;
  std::int64_t max_windows = 0;  // 0 = every full window
  std::int64_t batch_size = 1;   // windows per forward
  const KVCache* prefix = nullptr;
};

struct PerplexityResult {
  double perplexity = 0;
  double mean_nll = 0;              // nats per scored token
  std::int64_t windows = 0;
  std::int64_t scored_tokens = 0;   // windows * (seq_len - 1)
  std::int64_t corpus_tokens = 0;   // before cutting into windows
  std::int64_t seq_len = 0;
  double seconds = 0;
};

// `tokens`: the whole tokenized corpus (BOS, if any, already at its start). Throws
// kInvalidArgument if not even one window fits, or if prefix + seq_len exceeds the
// model's context.
PerplexityResult evaluate_perplexity(CausalLM& model, const std::vector<std::int64_t>& tokens, const PerplexityOptions& options);

}  // namespace cushioncache
