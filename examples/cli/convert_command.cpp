#include <memory>
#include <string>

#include "commands.h"
#include "cushioncache/core/log.h"

namespace cushioncache::cli {

void add_convert_command(CLI::App& app) {
  struct Flags {
    std::string model, out;
    ModelFlags model_flags;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("convert", "Write a model (e.g. a llama2.c .bin) as a Hugging Face folder");
  cmd->add_option("--model", flags->model, "Hugging Face model folder or llama2.c .bin")->required();
  cmd->add_option("--out", flags->out, "output folder (config.json + model.safetensors)")->required();
  flags->model_flags.add_to(*cmd);
  cmd->callback([flags] {
    auto model = load_model(flags->model, flags->model_flags.load_options());
    save_hf_model(*model, flags->out);
    log::info("wrote {}", flags->out);
  });
}

}  // namespace cushioncache::cli
