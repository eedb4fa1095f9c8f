#include "cushioncache/eval/perplexity.h"

#include <chrono>
#include <cmath>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "cushioncache/core/error.h"
#include "cushioncache/core/progress.h"
#include "cushioncache/eval/logprobs.h"

namespace cushioncache {

PerplexityResult evaluate_perplexity(CausalLM& model, const std::vector<std::int64_t>& tokens, const PerplexityOptions& options) {
  const std::int64_t prefix_len = options.prefix != nullptr ? options.prefix->length() : 0;
  const std::int64_t context = model.config().max_position_embeddings;
  if (options.seq_len < 2) throw_error(ErrorKind::kInvalidArgument, "seq_len {} must be at least 2", options.seq_len);
  if (options.batch_size < 1) throw_error(ErrorKind::kInvalidArgument, "batch_size {} must be at least 1", options.batch_size);
  if (prefix_len + options.seq_len > context)
    throw_error(ErrorKind::kInvalidArgument, "prefix ({} tokens) + seq_len ({}) exceeds the model's context of {} positions",
                prefix_len, options.seq_len, context);

  PerplexityResult result;
  result.seq_len = options.seq_len;
  result.corpus_tokens = static_cast<std::int64_t>(tokens.size());
  result.windows = result.corpus_tokens / options.seq_len;
  if (options.max_windows > 0) result.windows = std::min(result.windows, options.max_windows);
  if (result.windows == 0)
    throw_error(ErrorKind::kInvalidArgument, "the corpus has {} tokens, fewer than one window of {}", tokens.size(), options.seq_len);

  const auto start = std::chrono::steady_clock::now();
  at::Tensor all = at::tensor(tokens, at::kLong).narrow(0, 0, result.windows * options.seq_len).view({result.windows, options.seq_len});
  const std::int64_t scored_per_window = options.seq_len - 1;
  double total_nll = 0;
  Progress progress("perplexity", result.windows * options.seq_len, "tok");
  for (std::int64_t first = 0; first < result.windows; first += options.batch_size) {
    const std::int64_t B = std::min(options.batch_size, result.windows - first);
    at::Tensor ids = all.narrow(0, first, B);
    // Position t predicts token t + 1, for t = 0 .. seq_len - 2 of every window.
    at::Tensor rows = at::arange(B, at::kLong).repeat_interleave(scored_per_window);
    at::Tensor positions = at::arange(scored_per_window, at::kLong).repeat({B});
    at::Tensor targets = ids.narrow(1, 1, scored_per_window).reshape({-1});
    ScoredPositions scored = score_positions(model, ids, at::Tensor(), options.prefix, rows, positions, targets);
    const double nll = -scored.logprobs.sum().item<double>();
    if (!std::isfinite(nll))
      throw_error(ErrorKind::kNumerical, "non-finite log-likelihood in windows {}..{}", first, first + B - 1);
    total_nll += nll;
    result.scored_tokens += B * scored_per_window;
    progress.set_status(fmt::format("ppl {:.3f}", std::exp(total_nll / static_cast<double>(result.scored_tokens))));
    progress.advance(B * options.seq_len);
  }
  progress.finish();
  result.mean_nll = total_nll / static_cast<double>(result.scored_tokens);
  result.perplexity = std::exp(result.mean_nll);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace cushioncache
