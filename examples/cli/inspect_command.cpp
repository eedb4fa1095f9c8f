#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "cushioncache/analysis/inspect.h"
#include "cushioncache/core/files.h"
#include "cushioncache/core/log.h"
#include "cushioncache/model/identity.h"

namespace cushioncache::cli {

namespace {

// The windows' settings are the run config's inspect.*, with this command's defaults
// (InspectOptions': more and longer windows than a run's before/after plots).
RunConfig inspect_command_defaults() {
  RunConfig defaults;
  const InspectOptions options;
  defaults.inspect = options.windows;
  return defaults;
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  struct Flags {
    ModelFlags model;
    InspectOptions options;
    SettingFlags windows{inspect_command_defaults()};
    std::string out = "inspect-out", prefix_text, prefix;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("inspect", "Activation outliers and attention sinks: stats.json, CSV tables and SVG plots");
  flags->model.add_to(*cmd, /*with_tokenizer=*/true);
  flags->windows.add(*cmd, "--data", "inspect.data");
  flags->windows.add(*cmd, "--samples", "inspect.samples");
  flags->windows.add(*cmd, "--seq-len", "inspect.seq_len");
  flags->windows.add(*cmd, "--seed", "inspect.seed");
  cmd->add_option("--layer", flags->options.token_layer, "layer of the token-wise plot (default: the last)");
  cmd->add_option("--first-keys", flags->options.first_keys, "key positions whose attention mass is reported")
      ->capture_default_str()->check(positive());
  cmd->add_option("--prefix-text", flags->prefix_text, "also inspect with the KV of BOS + this text cached in front (no text = BOS only)")
      ->expected(0, 1);
  cmd->add_option("--prefix", flags->prefix, "also inspect with a CushionCache artifact's prefix cached in front");
  cmd->add_option("--out", flags->out, "output folder")->capture_default_str();
  cmd->callback([flags, cmd] {
    InspectOptions options = flags->options;
    options.windows = flags->windows.resolve().inspect;
    prepare_output_folder(flags->out, "--out");
    auto model = flags->model.load_model();
    auto tokenizer = flags->model.load_tokenizer();
    const std::optional<Artifact> prefix =
        load_prefix_flags(*model, *tokenizer, flags->prefix, cmd->count("--prefix-text") > 0 ? &flags->prefix_text : nullptr);
    if (prefix) options.prefix_label = describe_prefix(*prefix, *tokenizer);
    const Inspection inspection = inspect_model(*model, *tokenizer, options, prefix ? &prefix->prefix : nullptr);
    write_inspection(inspection, describe_model(*model, flags->model.model), flags->out);

    std::printf("%-30s %12s %12s %12s  %s\n", "input of the last block", "top-1", "top-10%", "median", "top-1 at (sample, position, dim)");
    auto row = [](const char* label, const ActivationReport& r) {
      const SiteStats& s = last_block_input(r);
      std::printf("%-30s %12.4g %12.4g %12.4g  (%lld, %lld, %lld)\n", label, s.top1, s.top10pct, s.median,
                  static_cast<long long>(s.top1_sample), static_cast<long long>(s.top1_position), static_cast<long long>(s.top1_channel));
    };
    row("no prefix", inspection.without_prefix);
    if (inspection.with_prefix) row(options.prefix_label.c_str(), *inspection.with_prefix);
    log::info("wrote stats.json, sites.csv, attention.csv, attention_heads.csv, token_max.csv and 4 SVG plots to {}", flags->out);
  });
}

}  // namespace cushioncache::cli
