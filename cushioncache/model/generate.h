// Autoregressive text generation with a KV cache: greedy (temperature 0) or sampling with
// temperature and top-p from a seeded generator. Stops at EOS or BOS (a document
// boundary; llama2.c stops at BOS the same way).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cushioncache/model/causal_lm.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache {

struct GenerateOptions {
  // Positions run through the model, prompt included, as llama2.c's -n: each one yields
  // the next token, so a BOS-only prompt gets `steps` new tokens. Clamped to the context.
  std::int64_t steps = 256;
  double temperature = 1.0;  // 0 = greedy
  double top_p = 1.0;        // nucleus sampling when < 1
  std::uint64_t seed = 0;
  BosPolicy bos = BosPolicy::kAuto;
  // A cached prefix (e.g. a CushionCache artifact's) before the prompt; its positions
  // count against the context, not against steps. The prompt must then be non-empty.
  const KVCache* prefix = nullptr;
  // Receives text as soon as it is final (whole UTF-8 characters, no pending bytes).
  std::function<void(std::string_view)> on_text;
};

struct GenerateResult {
  std::vector<std::int64_t> tokens;  // prompt (with BOS if any) + generated
  std::int64_t prompt_tokens = 0;
  std::string text;                  // decode(tokens), special tokens skipped (behind a prefix: as after BOS)
  double seconds = 0.0;              // wall time of the whole loop
};

GenerateResult generate(CausalLM& model, const Tokenizer& tokenizer, std::string_view prompt, const GenerateOptions& options);
// The same from prompt token ids, taken as they are (options.bos is not applied), e.g.
// ids from another implementation's tokenizer in a parity check.
GenerateResult generate(CausalLM& model, const Tokenizer& tokenizer, std::vector<std::int64_t> prompt_ids,
                        const GenerateOptions& options);

}  // namespace cushioncache
