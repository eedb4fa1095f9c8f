// Calibration data for static ranges and SmoothQuant: token windows sampled from a text
// corpus (tokenizer/text_windows.h), and the loop that runs them through a model while
// hooks observe.
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

// The windows of options.windows (sample_text_windows) in `room` tokens
// (room_after_prefix), a leading BOS counted or not as options.include_bos says.
CalibrationSet build_calibration_set(const Tokenizer& tokenizer, const CalibrationOptions& options, std::int64_t room, BosPolicy bos);

// Runs every sequence through the model (no autograd, batches of batch_size), behind the
// prefix when given, its uncounted leading positions marked as prefix tokens, showing
// progress under `label`.
void run_calibration(CausalLM& model, const CalibrationSet& calibration, const KVCache* prefix, std::int64_t batch_size,
                     const std::string& label);

}  // namespace cushioncache
