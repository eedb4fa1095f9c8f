// Log-likelihoods of continuations as lm-evaluation-harness computes them: the context
// and continuation are encoded together and split at the context's own token count (so
// merges across the boundary behave as in the harness), the input is the concatenation
// without its last token (left-truncated to the model's context), and the score is the
// sum of the continuation tokens' log-probabilities, plus whether each was the argmax.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cushioncache/model/causal_lm.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache {

class Progress;

struct TokenizedRequest {
  std::vector<std::int64_t> context;
  std::vector<std::int64_t> continuation;
};

// The harness's _encode_pair: trailing spaces of the context move to the continuation;
// whole = encode(context + continuation), context = encode(context), continuation =
// whole[len(context):]. An empty context becomes [BOS] (or [EOS] without a BOS), the
// harness's prefix token. `bos` applies to every encode (the harness adds none).
TokenizedRequest encode_pair(const Tokenizer& tokenizer, const std::string& context, const std::string& continuation, BosPolicy bos);

struct ContinuationScore {
  double logprob = 0;   // sum over the continuation tokens
  bool greedy = false;  // every continuation token was the argmax
  // The continuation alone was longer than the context window: only its last tokens, as
  // many as fit, were scored (the harness refuses such requests outright).
  bool truncated = false;
};

struct ScoringOptions {
  std::int64_t batch_size = 16;      // requests per forward, batched by length
  const KVCache* prefix = nullptr;   // placed before every request, never scored
  bool share_contexts = true;        // false: every request runs whole (for comparisons)
};

// Scores every request; the order of the results follows `requests`. Requests that
// share their context tokens (the choices of one item) run that context once and reuse
// its KV cache for their continuations; the others run whole. Both are sorted by length
// (longest first), batched and right-padded. batch_size bounds the sequences per forward.
std::vector<ContinuationScore> score_continuations(CausalLM& model, const std::vector<TokenizedRequest>& requests,
                                                   const ScoringOptions& options, Progress* progress = nullptr);

}  // namespace cushioncache
