// The commands that make prefixes: search, tune, baseline, and run (the whole pipeline).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "commands.h"
#include "cushioncache/core/log.h"
#include "cushioncache/core/memory_usage.h"
#include "cushioncache/pipeline/prefix_artifacts.h"
#include "cushioncache/pipeline/run.h"
#include "cushioncache/quant/recipe.h"

namespace cushioncache::cli {
namespace {

void print_prefix(const Artifact& a, const Tokenizer& tokenizer, const std::string& path) {
  std::printf("%s\nwritten to %s\n", describe_prefix(a, tokenizer).c_str(), path.c_str());
}

}  // namespace

void add_search_command(CLI::App& app) {
  struct Flags {
    ModelFlags model;
    SettingFlags settings;
    std::string seed = "bos", out;
    RunContext context;
    RankFlags ranks;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("search", "Greedy prefix search (exact pruning); writes a prefix artifact");
  flags->model.add_to(*cmd, /*with_tokenizer=*/true);
  SettingFlags& s = flags->settings;
  cmd->add_option("--seed-prefix", flags->seed, "bos, none, or text (BOS + text) to start from")->capture_default_str();
  s.add(*cmd, "--max-length", "search.max_length");
  s.add(*cmd, "--tau", "search.tau");
  s.add(*cmd, "--text-tokens", "search.text_tokens");
  s.add(*cmd, "--data", "search.data");
  s.add(*cmd, "--seed", "search.seed");
  s.add(*cmd, "--objective", "search.objective.kind");
  s.add(*cmd, "--objective-spec", "search.objective.spec");
  s.add_list(*cmd, "--sites", "search.objective.sites");
  s.add(*cmd, "--batch-size", "search.batch_size");
  s.add_list(*cmd, "--candidates", "search.candidates");
  s.add(*cmd, "--max-memory", "search.max_memory");
  s.add_switch(*cmd, "--exhaustive", "search.prune", "false", "no pruning (for comparisons: the result is the same, only slower)");
  cmd->add_option("--state", flags->context.state_file, "state file for resuming (default: <out>.search.json)");
  cmd->add_flag("--resume", flags->context.resume, "continue from the state file");
  flags->ranks.add_to(*cmd);
  cmd->add_option("--out", flags->out, "the prefix artifact to write")->required();
  cmd->callback([flags] {
    SearchOptions options = flags->settings.resolve().search;
    // Several ranks share the candidates of every step; rank 0 writes the files.
    auto group = join_ranks(flags->ranks, flags->model);
    RunContext context = flags->context;
    if (group->world_size() > 1) context.group = group.get();
    if (context.state_file.empty()) context.state_file = flags->out + ".search.json";
    auto model = flags->model.load_model();
    auto tokenizer = flags->model.load_tokenizer();
    if (flags->seed == "bos") options.seed_prefix = bos_prefix_tokens(*tokenizer);
    else if (flags->seed != "none") options.seed_prefix = tokenizer->encode(flags->seed, BosPolicy::kYes);
    const Artifact a = search_prefix_artifact(*model, *tokenizer, options, context);
    if (!group->is_leader()) return;
    save_artifact(a, flags->out);
    print_prefix(a, *tokenizer, flags->out);
  });
}

void add_tune_command(CLI::App& app) {
  struct Flags {
    ModelFlags model;
    SettingFlags settings;
    std::string prefix, quant = "w8a8-per-tensor-static", out;
    RunContext context;
    RankFlags ranks;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("tune", "Quantization-aware tuning of a prefix's KV; writes the CushionCache artifact");
  flags->model.add_to(*cmd, /*with_tokenizer=*/true);
  SettingFlags& s = flags->settings;
  cmd->add_option("--prefix", flags->prefix, "the prefix artifact to start from (e.g. from search)")->required();
  cmd->add_option("--quant", flags->quant, "the recipe the prefix is tuned under")->capture_default_str();
  s.add(*cmd, "--lambda", "tuning.lambda");
  s.add(*cmd, "--lr", "tuning.lr");
  s.add(*cmd, "--epochs", "tuning.epochs");
  s.add(*cmd, "--batch-size", "tuning.batch_size");
  s.add(*cmd, "--seq-len", "tuning.seq_len");
  s.add(*cmd, "--samples", "tuning.samples");
  s.add(*cmd, "--data", "tuning.data");
  s.add(*cmd, "--seed", "tuning.seed");
  s.add(*cmd, "--grad-clip", "tuning.grad_clip");
  s.add(*cmd, "--checkpoint-every", "tuning.checkpoint_every");
  cmd->add_option("--checkpoint", flags->context.state_file, "checkpoint for resuming (default: <out>.checkpoint.safetensors)");
  cmd->add_flag("--resume", flags->context.resume, "continue from the checkpoint");
  flags->ranks.add_to(*cmd);
  cmd->add_option("--out", flags->out, "the tuned artifact to write")->required();
  cmd->callback([flags] {
    const TuningOptions options = flags->settings.resolve().tuning;
    // Several ranks split every batch (data-parallel); rank 0 writes the files.
    auto group = join_ranks(flags->ranks, flags->model);
    RunContext context = flags->context;
    if (group->world_size() > 1) context.group = group.get();
    if (context.state_file.empty()) context.state_file = flags->out + ".checkpoint.safetensors";
    auto tokenizer = flags->model.load_tokenizer();
    const QuantRecipe recipe = load_recipe(flags->quant);
    const ModelFactory load = [&] { return flags->model.load_model(); };
    const Artifact start = load_artifact(flags->prefix);  // bound to the model (and checked) by the tuning
    const Artifact tuned = tune_prefix_artifact(load, *tokenizer, start, recipe, options, context);
    if (!group->is_leader()) return;
    save_artifact(tuned, flags->out);
    print_prefix(tuned, *tokenizer, flags->out);
  });
}

void add_baseline_command(CLI::App& app) {
  struct Flags {
    ModelFlags model;
    SettingFlags settings;
    std::string kind, quant, out;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("baseline", "A baseline prefix artifact in seconds: BOS only, or PrefixQuant-style");
  flags->model.add_to(*cmd, /*with_tokenizer=*/true);
  cmd->add_option("--kind", flags->kind, "bos or prefixquant")->required()->check(CLI::IsMember({"bos", "prefixquant"}));
  flags->settings.add(*cmd, "--threshold", "prefixquant.threshold");
  flags->settings.add(*cmd, "--samples", "prefixquant.samples");
  flags->settings.add(*cmd, "--seq-len", "prefixquant.seq_len");
  flags->settings.add(*cmd, "--data", "prefixquant.data");
  flags->settings.add(*cmd, "--seed", "prefixquant.seed");
  flags->settings.add(*cmd, "--max-tokens", "prefixquant.max_tokens");
  cmd->add_option("--quant", flags->quant, "also store static ranges of this recipe calibrated with the prefix");
  cmd->add_option("--out", flags->out, "the artifact to write")->required();
  cmd->callback([flags] {
    const PrefixQuantOptions prefixquant = flags->settings.resolve().prefixquant;
    auto tokenizer = flags->model.load_tokenizer();
    const ModelFactory load = [&] { return flags->model.load_model(); };
    Artifact a = baseline_artifact(*load(), *tokenizer, flags->kind, prefixquant);
    if (!flags->quant.empty()) calibrate_artifact_ranges(load, *tokenizer, a, load_recipe(flags->quant));
    save_artifact(a, flags->out);
    print_prefix(a, *tokenizer, flags->out);
  });
}

void add_run_command(CLI::App& app) {
  struct Flags {
    std::string config, out;
    std::vector<std::string> set;
    bool resume = false, settings = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("run", "The whole pipeline from a config: evaluate, baselines, search, tune, evaluate, report");
  cmd->add_option("--config", flags->config, "a run config (configs/*.yaml)");
  cmd->add_option("--set", flags->set,
                  "KEY=VALUE over the config's value, checked as the file's are (repeatable; e.g. --set search.tau=0.3 "
                  "--set 'eval.ppl=[wikitext2, c4]'); --settings lists the keys");
  cmd->add_option("--out", flags->out, "output folder (default: runs/<config name>)");
  cmd->add_flag("--resume", flags->resume, "continue the search and the tuning from their state files in the output folder");
  cmd->add_flag("--settings", flags->settings, "list every setting of a run config (key, meaning, example) and exit");
  cmd->callback([flags] {
    if (flags->settings) {
      for (const RunConfigSetting& s : run_config_settings()) std::printf("%-32s %s (e.g. %s)\n", s.key.c_str(), s.help.c_str(), s.example.c_str());
      return;
    }
    if (flags->config.empty()) throw CLI::RequiredError("--config");
    const RunConfig config = load_run_config(flags->config, flags->set);
    const std::string out = flags->out.empty() ? "runs/" + config.name : flags->out;
    run_pipeline(config, out, flags->resume);
    std::printf("report: %s/report.md\n", out.c_str());
  });
}

}  // namespace cushioncache::cli
