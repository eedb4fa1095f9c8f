#include <cstdint>
#include <memory>
#include <sstream>
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

// "1 5 9" or "1,5,9".
std::vector<std::int64_t> parse_ids(std::string text) {
  for (char& ch : text)
    if (ch == ',') ch = ' ';
  std::istringstream in(text);
  std::vector<std::int64_t> ids;
  std::string word;
  while (in >> word) {
    try {
      std::size_t used = 0;
      ids.push_back(std::stoll(word, &used));
      if (used != word.size()) throw std::invalid_argument(word);
    } catch (const std::exception&) {
      throw_error(ErrorKind::kInvalidArgument, "--ids: '{}' is not a token id", word);
    }
  }
  return ids;
}

}  // namespace

void add_logits_command(CLI::App& app) {
  struct Flags {
    ModelFlags model;
    std::string ids, text, out;
    std::int64_t prefix_length = 0;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "logits", "Write the float32 logits of one sequence to a .safetensors file (for parity checks against other implementations)");
  flags->model.add_to(*cmd, /*with_tokenizer=*/true);
  auto* ids = cmd->add_option("--ids", flags->ids, "token ids, space- or comma-separated");
  auto* text = cmd->add_option("--text", flags->text, "text to encode with the tokenizer instead (its BOS policy)");
  ids->excludes(text);
  text->excludes(ids);
  cmd->add_option("--prefix-length", flags->prefix_length,
                  "also run the first N tokens as a cached prefix and the rest behind its KV (cached_logits)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--out", flags->out, "output .safetensors: input_ids [T], logits [T, vocab], cached_logits [T - N, vocab]")->required();
  cmd->callback([flags, ids, text] {
    if (ids->count() == 0 && text->count() == 0) throw CLI::RequiredError("--ids or --text");
    c10::NoGradGuard no_grad;
    auto model = flags->model.load_model();
    const std::vector<std::int64_t> tokens =
        ids->count() > 0 ? parse_ids(flags->ids) : flags->model.load_tokenizer()->encode(flags->text, BosPolicy::kAuto);
    if (tokens.empty()) throw_error(ErrorKind::kInvalidArgument, "no tokens to run");
    const auto T = static_cast<std::int64_t>(tokens.size());
    if (flags->prefix_length >= T)
      throw_error(ErrorKind::kInvalidArgument, "--prefix-length {} leaves no text of the {} tokens", flags->prefix_length, T);

    const at::Tensor input = at::tensor(tokens, at::kLong);
    std::vector<std::pair<std::string, at::Tensor>> tensors = {{"input_ids", input},
                                                               {"logits", model->forward(input.unsqueeze(0)).logits.squeeze(0)}};
    if (flags->prefix_length > 0) {
      const std::vector<std::int64_t> prefix(tokens.begin(), tokens.begin() + flags->prefix_length);
      const KVCache cache = compute_kv_cache(*model, prefix);
      ForwardOptions options;
      options.past = &cache;
      const at::Tensor rest = input.narrow(0, flags->prefix_length, T - flags->prefix_length).unsqueeze(0);
      tensors.emplace_back("cached_logits", model->forward(rest.to(model->device()), options).logits.squeeze(0));
    }
    write_safetensors(flags->out, tensors,
                      {{"model_type", model->config().model_type}, {"prefix_length", std::to_string(flags->prefix_length)}});
    log::info("{} tokens: logits written to {}", T, flags->out);
  });
}

}  // namespace cushioncache::cli
