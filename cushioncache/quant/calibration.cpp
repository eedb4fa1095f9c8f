#include "cushioncache/quant/calibration.h"

#include <random>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>

#include "cushioncache/core/error.h"
#include "cushioncache/core/progress.h"
#include "cushioncache/io/corpus.h"

namespace cushioncache {

CalibrationSet build_calibration_set(const Tokenizer& tokenizer, const CalibrationOptions& options, std::int64_t max_seq_len,
                                     BosPolicy bos) {
  const std::int64_t seq_len = std::min(options.seq_len, max_seq_len);
  if (options.samples < 1 || seq_len < 2)
    throw_error(ErrorKind::kInvalidConfig, "calibration needs samples >= 1 and seq_len >= 2 (got {}, {})", options.samples, seq_len);
  const auto documents = load_documents(options.data);
  // BOS, when wanted, takes the first position of every window.
  const auto with_bos = tokenizer.encode("x", bos), without_bos = tokenizer.encode("x", BosPolicy::kNo);
  const std::vector<std::int64_t> lead(with_bos.begin(), with_bos.end() - static_cast<std::ptrdiff_t>(without_bos.size()));
  const auto text_len = static_cast<std::size_t>(seq_len) - lead.size();

  std::mt19937_64 rng(options.seed);
  CalibrationSet set;
  std::vector<std::vector<std::int64_t>> encoded(documents.size());
  std::vector<bool> tried(documents.size(), false);
  std::size_t too_short = 0;
  auto window_from = [&](const std::vector<std::int64_t>& tokens) {
    std::uniform_int_distribution<std::size_t> start(0, tokens.size() - text_len);
    const std::size_t s = start(rng);
    std::vector<std::int64_t> seq = lead;
    seq.insert(seq.end(), tokens.begin() + static_cast<std::ptrdiff_t>(s), tokens.begin() + static_cast<std::ptrdiff_t>(s + text_len));
    set.sequences.push_back(std::move(seq));
  };
  std::uniform_int_distribution<std::size_t> pick(0, documents.size() - 1);
  while (static_cast<std::int64_t>(set.sequences.size()) < options.samples && too_short < documents.size()) {
    const std::size_t d = pick(rng);
    if (!tried[d]) {
      encoded[d] = tokenizer.encode(documents[d], BosPolicy::kNo);
      tried[d] = true;
      if (encoded[d].size() < text_len) ++too_short;
    }
    if (encoded[d].size() >= text_len) window_from(encoded[d]);
  }
  std::string how = "random windows of single documents";
  if (static_cast<std::int64_t>(set.sequences.size()) < options.samples) {
    // Every document is shorter than a window: sample from their concatenation instead.
    std::vector<std::int64_t> all;
    for (const auto& doc : documents) {
      auto t = tokenizer.encode(doc, BosPolicy::kNo);
      all.insert(all.end(), t.begin(), t.end());
    }
    if (all.size() < text_len)
      throw_error(ErrorKind::kInvalidConfig, "calibration data {} holds {} tokens, fewer than one window of {}", options.data, all.size(),
                  text_len);
    while (static_cast<std::int64_t>(set.sequences.size()) < options.samples) window_from(all);
    how = "random windows of the concatenated documents";
  }
  if (!options.include_bos) set.uncounted_leading = static_cast<std::int64_t>(lead.size());
  set.description = fmt::format("{} x {} tokens from {} ({}, seed {}{})", options.samples, seq_len, options.data, how, options.seed,
                                lead.empty() ? "" : options.include_bos ? ", BOS first" : ", BOS first, not counted");
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
