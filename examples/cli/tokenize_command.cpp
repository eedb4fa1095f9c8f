#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "commands.h"
#include "cushioncache/core/files.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache::cli {

void add_tokenize_command(CLI::App& app) {
  struct Flags {
    std::string tokenizer, text, file, bos = "auto";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text, space-separated on one line");
  cmd->add_option("--tokenizer", flags->tokenizer, "tokenizer folder, tokenizer.json or llama2.c tok*.bin")->required();
  auto* text = cmd->add_option("--text", flags->text, "text to encode");
  auto* file = cmd->add_option("--file", flags->file, "file whose contents to encode");
  text->excludes(file);
  file->excludes(text);
  cmd->add_option("--bos", flags->bos, "auto = what the tokenizer's config says")
      ->capture_default_str()->check(CLI::IsMember({"auto", "yes", "no"}));
  cmd->callback([flags, text, file] {
    if (text->count() == 0 && file->count() == 0) throw CLI::RequiredError("--text or --file");
    const std::string input = file->count() > 0 ? read_file(flags->file) : flags->text;
    auto tokenizer = load_tokenizer(flags->tokenizer);
    const auto ids = tokenizer->encode(input, parse_bos_policy(flags->bos));
    fmt::print("{}\n", fmt::join(ids, " "));
  });
}

}  // namespace cushioncache::cli
