// Calibration data for static ranges and SmoothQuant: token windows sampled from a text
// corpus (GPTQ-style: a random document long enough, a random window in it, seeded), and
// the loop that runs them through a model while hooks observe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cushioncache/model/causal_lm.h"
#include "cushioncache/quant/recipe.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache {

struct CalibrationSet {
  std::vector<std::vector<std::int64_t>> sequences;  // equal lengths
  // Leading positions of every window that run through the model but count toward no
  // range (ForwardOptions::prefix_tokens): the BOS when options.include_bos is false.
  std::int64_t uncounted_leading = 0;
  std::string description;  // for reports
};

// options.samples windows of min(options.seq_len, max_seq_len) tokens. With BOS (the
// policy decides; use kNo when a prefix will stand before the windows) the window is BOS
// followed by seq_len - 1 text tokens, the BOS counted or not as options.include_bos
// says. Documents shorter than a window are skipped; if none is long enough, windows come
// from the documents concatenated.
CalibrationSet build_calibration_set(const Tokenizer& tokenizer, const CalibrationOptions& options, std::int64_t max_seq_len,
                                     BosPolicy bos);

// Runs every sequence through the model (no autograd, batches of batch_size), behind the
// prefix when given, its uncounted leading positions marked as prefix tokens, showing
// progress under `label`.
void run_calibration(CausalLM& model, const CalibrationSet& calibration, const KVCache* prefix, std::int64_t batch_size,
                     const std::string& label);

}  // namespace cushioncache
