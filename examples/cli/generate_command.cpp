#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "commands.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"
#include "cushioncache/model/generate.h"
#include "cushioncache/pipeline/quantized_eval.h"
#include "cushioncache/quant/recipe.h"

namespace cushioncache::cli {

void add_generate_command(CLI::App& app) {
  struct Flags {
    ModelFlags model;
    std::string prompt, ids, prefix, quant, exec = "fake";
    bool print_ids = false;
    GenerateOptions generate;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt (greedy with --temperature 0)");
  flags->model.add_to(*cmd, /*with_tokenizer=*/true);
  auto* prompt = cmd->add_option("--prompt", flags->prompt, "text to continue (default: empty, start from BOS)");
  // Ids from another implementation's tokenizer, so a parity check does not depend on ours.
  auto* ids = cmd->add_option("--ids", flags->ids, "prompt as token ids (space- or comma-separated), taken as they are (no BOS added)");
  ids->excludes(prompt);
  cmd->add_flag("--print-ids", flags->print_ids, "print the generated token ids (space-separated, one line) instead of the text");
  cmd->add_option("--steps", flags->generate.steps, "positions in total, prompt included (llama2.c's -n)")
      ->capture_default_str()->check(positive());
  cmd->add_option("--temperature", flags->generate.temperature, "0 = greedy")->capture_default_str()->check(non_negative());
  cmd->add_option("--top-p", flags->generate.top_p, "nucleus sampling mass, in (0, 1]")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", flags->generate.seed, "sampling seed")->capture_default_str();
  cmd->add_option("--prefix", flags->prefix, "a CushionCache artifact whose prefix KV is cached before the prompt (no second BOS)");
  cmd->add_option("--quant", flags->quant, "generate from the model quantized with this preset or recipe .yaml (as eval --quant)");
  cmd->add_option("--exec", flags->exec, "fake: fake quantization; int8: the quantized linears run on the INT8 kernels")
      ->capture_default_str()->check(CLI::IsMember({"fake", "int8"}));

  cmd->callback([flags, ids] {
    if (flags->exec == "int8" && flags->quant.empty()) throw_error(ErrorKind::kInvalidArgument, "--exec int8 needs --quant RECIPE");
    const std::optional<QuantRecipe> recipe = flags->quant.empty() ? std::nullopt : std::optional<QuantRecipe>(load_recipe(flags->quant));
    auto model = flags->model.load_model();
    auto tokenizer = flags->model.load_tokenizer();
    const std::optional<Artifact> prefix = load_prefix_flags(*model, *tokenizer, flags->prefix, nullptr);

    GenerateOptions options = flags->generate;
    if (prefix) {
      options.prefix = &prefix->prefix;
      options.bos = BosPolicy::kNo;
      log::info("prefix: {}", describe_prefix(*prefix, *tokenizer));
    }
    VariantQuantizer::Applied quantized;
    if (recipe) {
      VariantQuantizer quantizer(*tokenizer, prefix ? &*prefix : nullptr, flags->exec == "int8");
      quantized = quantizer.apply(*model, *recipe);
      options.prefix = quantized.quantized->prefix();  // the prefix as the quantized model reads it (SmoothQuant)
      log::info("{}{}{}", recipe->name, flags->exec == "int8" ? " on the INT8 kernels" : " (fake quantization)",
                quantized.calibration.empty() ? "" : ", " + quantized.calibration);
    }
    if (!flags->print_ids) {
      options.on_text = [](std::string_view text) {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
      };
    }
    GenerateResult result = ids->count() > 0 ? generate(*model, *tokenizer, parse_token_ids(flags->ids, "--ids"), options)
                                             : generate(*model, *tokenizer, flags->prompt, options);
    if (flags->print_ids) {
      std::string line;
      for (std::size_t i = static_cast<std::size_t>(result.prompt_tokens); i < result.tokens.size(); ++i)
        line += fmt::format("{}{}", line.empty() ? "" : " ", result.tokens[i]);
      std::fputs(line.c_str(), stdout);
    }
    std::fputc('\n', stdout);
    const auto generated = static_cast<std::int64_t>(result.tokens.size()) - result.prompt_tokens;
    log::info("{} prompt + {} generated tokens in {:.2f} s ({:.1f} tok/s)", result.prompt_tokens, generated, result.seconds,
              result.seconds > 0 ? generated / result.seconds : 0.0);
  });
}

}  // namespace cushioncache::cli
