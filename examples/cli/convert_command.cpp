#include <memory>
#include <string>

#include "commands.h"
#include "cushioncache/core/log.h"

namespace cushioncache::cli {

void add_convert_command(CLI::App& app) {
  struct Flags {
    ModelFlags model;
    std::string out;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("convert", "Write a model (e.g. a llama2.c .bin) as a Hugging Face folder");
  flags->model.add_to(*cmd, /*with_tokenizer=*/false);
  cmd->add_option("--out", flags->out, "output folder (config.json + model.safetensors)")->required();
  cmd->callback([flags] {
    auto model = flags->model.load_model();
    save_hf_model(*model, flags->out);
    log::info("wrote {}", flags->out);
  });
}

}  // namespace cushioncache::cli
