#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>

#include "commands.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"
#include "cushioncache/io/safetensors.h"
#include "cushioncache/model/causal_lm.h"

namespace cushioncache::cli {
namespace {

// Rows of different lengths padded to one batch the way Hugging Face tokenizers pad:
// pad id 0 on the chosen side, attention_mask 1 at real tokens.
struct PaddedBatch {
  at::Tensor ids;   // [B, T] int64
  at::Tensor mask;  // [B, T] int64
};

PaddedBatch pad_rows(const std::vector<std::vector<std::int64_t>>& rows, bool left) {
  std::size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.size());
  const auto B = static_cast<std::int64_t>(rows.size()), T = static_cast<std::int64_t>(width);
  PaddedBatch batch{at::zeros({B, T}, at::kLong), at::zeros({B, T}, at::kLong)};
  for (std::int64_t b = 0; b < B; ++b) {
    const auto L = static_cast<std::int64_t>(rows[b].size());
    const std::int64_t start = left ? T - L : 0;
    batch.ids[b].narrow(0, start, L).copy_(at::tensor(rows[b], at::kLong));
    batch.mask[b].narrow(0, start, L).fill_(1);
  }
  return batch;
}

}  // namespace

void add_logits_command(CLI::App& app) {
  struct Flags {
    ModelFlags model;
    std::vector<std::string> ids;
    std::string text, out, padding = "right";
    std::int64_t prefix_length = 0;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "logits", "Write the float32 logits of one sequence, or of a padded batch, to a .safetensors file (for parity checks against other implementations)");
  flags->model.add_to(*cmd, /*with_tokenizer=*/true);
  // One value per occurrence: "--ids '1 5 9' --ids '4 2'" is a batch of two rows.
  auto* ids = cmd->add_option("--ids", flags->ids, "token ids, space- or comma-separated; given again, one more row of a padded batch")
                  ->expected(1)
                  ->allow_extra_args(false)
                  ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  auto* text = cmd->add_option("--text", flags->text, "text to encode with the tokenizer instead (its BOS policy)");
  ids->excludes(text);
  text->excludes(ids);
  cmd->add_option("--padding", flags->padding, "side the shorter rows of a batch are padded on (with attention_mask 0)")
      ->capture_default_str()->check(CLI::IsMember({"left", "right"}));
  cmd->add_option("--prefix-length", flags->prefix_length,
                  "also run the first N tokens (of every row) as a cached prefix and the rest behind its KV (cached_logits)")
      ->capture_default_str()->check(non_negative());
  cmd->add_option("--out", flags->out,
                  "output .safetensors: input_ids [T], logits [T, vocab], cached_logits [T - N, vocab]; for a batch the same with a "
                  "leading [B] and attention_mask, cached_attention_mask")
      ->required();
  cmd->callback([flags, ids, text] {
    if (ids->count() == 0 && text->count() == 0) throw CLI::RequiredError("--ids or --text");
    c10::NoGradGuard no_grad;
    auto model = flags->model.load_model();
    std::vector<std::vector<std::int64_t>> rows;
    if (ids->count() > 0) {
      for (const std::string& row : flags->ids) rows.push_back(parse_token_ids(row, "--ids"));
    } else {
      rows.push_back(flags->model.load_tokenizer()->encode(flags->text, BosPolicy::kAuto));
    }
    const std::int64_t N = flags->prefix_length;
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const auto T = static_cast<std::int64_t>(rows[r].size());
      if (T == 0) throw_error(ErrorKind::kInvalidArgument, "row {}: no tokens to run", r);
      if (N >= T) throw_error(ErrorKind::kInvalidArgument, "--prefix-length {} leaves no text of the {} tokens of row {}", N, T, r);
    }

    if (rows.size() == 1) {
      const std::vector<std::int64_t>& tokens = rows.front();
      const auto T = static_cast<std::int64_t>(tokens.size());
      const at::Tensor input = at::tensor(tokens, at::kLong);
      std::vector<std::pair<std::string, at::Tensor>> tensors = {{"input_ids", input},
                                                                 {"logits", model->forward(input.unsqueeze(0)).logits.squeeze(0)}};
      if (N > 0) {
        const std::vector<std::int64_t> prefix(tokens.begin(), tokens.begin() + N);
        const KVCache cache = compute_kv_cache(*model, prefix);
        ForwardOptions options;
        options.past = &cache;
        const at::Tensor rest = input.narrow(0, N, T - N).unsqueeze(0);
        tensors.emplace_back("cached_logits", model->forward(rest.to(model->device()), options).logits.squeeze(0));
      }
      write_safetensors(flags->out, tensors, {{"model_type", model->config().model_type}, {"prefix_length", std::to_string(N)}});
      log::info("{} tokens: logits written to {}", T, flags->out);
      return;
    }

    // A padded batch through the library's attention_mask: padding takes no position and
    // no key slot, so each row's logits at its real tokens are those of the row alone.
    const bool left = flags->padding == "left";
    const PaddedBatch full = pad_rows(rows, left);
    ForwardOptions full_options;
    full_options.attention_mask = full.mask;
    std::vector<std::pair<std::string, at::Tensor>> tensors = {
        {"input_ids", full.ids}, {"attention_mask", full.mask}, {"logits", model->forward(full.ids, full_options).logits}};
    if (N > 0) {
      // The prefix (the first N tokens of every row) is unpadded; the rows' remainders are
      // padded again on the same side and run behind the prefix's [B] KV.
      std::vector<std::vector<std::int64_t>> prefixes, rests;
      for (const auto& row : rows) {
        prefixes.emplace_back(row.begin(), row.begin() + N);
        rests.emplace_back(row.begin() + N, row.end());
      }
      ForwardOptions prefix_options;
      prefix_options.return_cache = true;
      const KVCache cache = model->forward(pad_rows(prefixes, left).ids, prefix_options).cache;
      const PaddedBatch rest = pad_rows(rests, left);
      ForwardOptions options;
      options.past = &cache;
      options.attention_mask = rest.mask;
      tensors.emplace_back("cached_input_ids", rest.ids);
      tensors.emplace_back("cached_attention_mask", rest.mask);
      tensors.emplace_back("cached_logits", model->forward(rest.ids, options).logits);
    }
    write_safetensors(flags->out, tensors,
                      {{"model_type", model->config().model_type}, {"prefix_length", std::to_string(N)}, {"padding", flags->padding}});
    log::info("{} rows padded on the {} to {} tokens: logits written to {}", rows.size(), flags->padding, full.ids.size(1), flags->out);
  });
}

}  // namespace cushioncache::cli
