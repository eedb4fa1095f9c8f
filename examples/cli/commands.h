// The subcommands of the `cushioncache` CLI and the flags they share.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "cushioncache/model/loader.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache::cli {

// --model, --tokenizer, --device and --dtype, shared by every command that loads a model.
struct ModelFlags {
  std::string model, tokenizer;
  std::string device = "cpu";
  std::string dtype = "auto";

  void add_to(CLI::App& command, bool with_tokenizer);
  std::unique_ptr<CausalLM> load_model() const;
  // --tokenizer, or the tokenizer that lives beside the model.
  std::unique_ptr<Tokenizer> load_tokenizer() const;
};

void add_generate_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_inspect_command(CLI::App& app);

}  // namespace cushioncache::cli
