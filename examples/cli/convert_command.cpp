#include <memory>
#include <optional>
#include <string>

#include "commands.h"
#include "cushioncache/core/log.h"
#include "cushioncache/io/gguf.h"
#include "cushioncache/tokenizer/gguf_tokenizer.h"

namespace cushioncache::cli {

void add_convert_command(CLI::App& app) {
  struct Flags {
    ModelFlags model;
    std::string out;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("convert", "Write a model (a llama.cpp .gguf, dequantized, or a llama2.c .bin) as a Hugging Face folder");
  flags->model.add_to(*cmd, /*with_tokenizer=*/false);
  cmd->add_option("--out", flags->out, "output folder (config.json + model.safetensors; for a .gguf also tokenizer.json + tokenizer_config.json)")->required();
  cmd->callback([flags] {
    auto model = flags->model.load_model();
    // The tokenizer is rebuilt before anything is written: a bad vocabulary leaves no folder.
    std::optional<GgufTokenizerFiles> tokenizer;
    if (is_gguf_file(flags->model.model)) tokenizer = gguf_tokenizer_files(GgufFile::open(flags->model.model));
    save_hf_model(*model, flags->out);
    if (tokenizer) write_tokenizer_files(*tokenizer, flags->out);
    log::info("wrote {}", flags->out);
  });
}

}  // namespace cushioncache::cli
