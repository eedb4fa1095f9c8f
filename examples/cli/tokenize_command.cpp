#include <cstdio>
#include <memory>
#include <sstream>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/files.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache::cli {

void add_tokenize_command(CLI::App& app) {
  struct Flags {
    std::string tokenizer, text, file, lines, bos = "auto";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text, space-separated on one line");
  cmd->add_option("--tokenizer", flags->tokenizer, "tokenizer folder, tokenizer.json, .gguf file or llama2.c tok*.bin")
      ->required();
  auto* text = cmd->add_option("--text", flags->text, "text to encode");
  auto* file = cmd->add_option("--file", flags->file, "file whose contents to encode");
  auto* lines = cmd->add_option("--lines", flags->lines,
                                "file with one JSON string per line (so a text may hold newlines); "
                                "prints one line of ids per text");
  text->excludes(file)->excludes(lines);
  file->excludes(text)->excludes(lines);
  lines->excludes(text)->excludes(file);
  cmd->add_option("--bos", flags->bos, "auto = what the tokenizer's config says")
      ->capture_default_str()->check(CLI::IsMember({"auto", "yes", "no"}));
  cmd->callback([flags, text, file, lines] {
    if (text->count() == 0 && file->count() == 0 && lines->count() == 0)
      throw CLI::RequiredError("--text, --file or --lines");
    const BosPolicy bos = parse_bos_policy(flags->bos);
    auto tokenizer = load_tokenizer(flags->tokenizer);
    if (lines->count() > 0) {
      // One process for many texts: loading a 100K-token vocabulary costs far more than
      // encoding a sentence.
      std::istringstream in(read_file(flags->lines));
      std::string line;
      for (int line_no = 1; std::getline(in, line); ++line_no) {
        nlohmann::json value;
        try {
          value = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception&) {
        }
        if (!value.is_string())
          throw_error(ErrorKind::kCorruptInput, "{}: line {} is not a JSON string", flags->lines, line_no);
        fmt::print("{}\n", fmt::join(tokenizer->encode(value.get<std::string>(), bos), " "));
      }
      return;
    }
    const std::string input = file->count() > 0 ? read_file(flags->file) : flags->text;
    fmt::print("{}\n", fmt::join(tokenizer->encode(input, bos), " "));
  });
}

}  // namespace cushioncache::cli
