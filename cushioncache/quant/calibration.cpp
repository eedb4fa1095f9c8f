#include "cushioncache/quant/calibration.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>

#include "cushioncache/core/error.h"
#include "cushioncache/core/progress.h"

namespace cushioncache {

CalibrationSet build_calibration_set(const Tokenizer& tokenizer, const CalibrationOptions& options, std::int64_t room, BosPolicy bos) {
  SampledWindows sampled =
      sample_text_windows(tokenizer, options.windows, room, bos, options.include_bos ? "BOS first" : "BOS first, not counted");
  CalibrationSet set;
  set.sequences = std::move(sampled.sequences);
  if (!options.include_bos) set.uncounted_leading = sampled.leading;
  set.description = std::move(sampled.description);
  return set;
}

void run_calibration(CausalLM& model, const CalibrationSet& calibration, const KVCache* prefix, std::int64_t batch_size,
                     const std::string& label) {
  if (calibration.sequences.empty()) throw_error(ErrorKind::kInvalidArgument, "the calibration set is empty");
  c10::NoGradGuard no_grad;
  Progress progress(label, static_cast<std::int64_t>(calibration.sequences.size()), "seq");
  for (std::size_t first = 0; first < calibration.sequences.size(); first += static_cast<std::size_t>(batch_size)) {
    const std::size_t count = std::min(calibration.sequences.size() - first, static_cast<std::size_t>(batch_size));
    std::vector<at::Tensor> rows;
    for (std::size_t i = 0; i < count; ++i) rows.push_back(at::tensor(calibration.sequences[first + i], at::kLong));
    ForwardOptions options;
    options.past = prefix;
    options.prefix_tokens = calibration.uncounted_leading;
    options.last_logits_only = true;  // the hooks are what matters
    (void)model.forward(at::stack(rows), options);
    progress.advance(static_cast<std::int64_t>(count));
  }
  progress.finish();
}

}  // namespace cushioncache
