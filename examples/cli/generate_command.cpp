#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"
#include "cushioncache/model/generate.h"

namespace cushioncache::cli {

void add_generate_command(CLI::App& app) {
  struct Flags {
    std::string model, tokenizer, prompt;
    GenerateOptions generate;
    ModelFlags model_flags;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt (greedy with --temperature 0)");
  cmd->add_option("--model", flags->model, "Hugging Face model folder or llama2.c .bin")->required();
  cmd->add_option("--tokenizer", flags->tokenizer, "tokenizer folder, tokenizer.json or llama2.c tok*.bin (default: beside the model)");
  cmd->add_option("--prompt", flags->prompt, "text to continue (default: empty, start from BOS)");
  cmd->add_option("--steps", flags->generate.steps, "positions in total, prompt included (llama2.c's -n)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", flags->generate.temperature, "0 = greedy")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", flags->generate.top_p, "nucleus sampling mass, in (0, 1]")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", flags->generate.seed, "sampling seed")->capture_default_str();
  flags->model_flags.add_to(*cmd);

  cmd->callback([flags] {
    const LoadOptions load = flags->model_flags.load_options();
    std::unique_ptr<CausalLM> model = load_model(flags->model, load);
    std::filesystem::path tokenizer_path = flags->tokenizer;
    if (tokenizer_path.empty()) {
      auto found = default_tokenizer_path(flags->model, model->config());
      if (!found) throw_error(ErrorKind::kNotFound, "no tokenizer found beside {}; pass --tokenizer", flags->model);
      tokenizer_path = *found;
    }
    auto tokenizer = load_tokenizer(tokenizer_path);
    log::debug("model {} ({} layers), tokenizer {}", flags->model, model->config().num_layers, tokenizer->describe());

    GenerateOptions options = flags->generate;
    options.on_text = [](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    };
    GenerateResult result = generate(*model, *tokenizer, flags->prompt, options);
    std::fputc('\n', stdout);
    const auto generated = static_cast<std::int64_t>(result.tokens.size()) - result.prompt_tokens;
    log::info("{} prompt + {} generated tokens in {:.2f} s ({:.1f} tok/s)", result.prompt_tokens, generated, result.seconds,
              result.seconds > 0 ? generated / result.seconds : 0.0);
  });
}

}  // namespace cushioncache::cli
