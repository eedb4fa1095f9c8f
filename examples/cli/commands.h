// The subcommands of the `cushioncache` CLI and the flags they share.
#pragma once

#include <string>

#include <CLI/CLI.hpp>
#include <c10/core/Device.h>

#include "cushioncache/model/loader.h"

namespace cushioncache::cli {

// --device and --dtype, shared by every command that loads a model.
struct ModelFlags {
  std::string device = "cpu";
  std::string dtype = "auto";
  void add_to(CLI::App& command);
  LoadOptions load_options() const;
};

void add_generate_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_convert_command(CLI::App& app);

}  // namespace cushioncache::cli
