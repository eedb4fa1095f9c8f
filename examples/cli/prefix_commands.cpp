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
    SearchOptions options;
    std::string seed = "bos", objective = "quant_error", spec = "a8-per-tensor-dynamic-asym", max_memory, out;
    std::vector<std::string> sites = {"block_input"};
    bool exhaustive = false, resume = false;
    RankFlags ranks;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("search", "Greedy prefix search (exact pruning); writes a prefix artifact");
  flags->model.add_to(*cmd, /*with_tokenizer=*/true);
  cmd->add_option("--seed-prefix", flags->seed, "bos, none, or text (BOS + text) to start from")->capture_default_str();
  cmd->add_option("--max-length", flags->options.max_length, "prefix tokens at most, seed included")->capture_default_str()->check(positive());
  cmd->add_option("--tau", flags->options.tau, "accept only if L(prefix + t) < tau * L(prefix)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--text-tokens", flags->options.text_tokens, "calibration text per step (default: min(512, context - max-length))")
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--data", flags->options.data, "calibration corpus (c4, wikitext2, or a file)")->capture_default_str();
  cmd->add_option("--seed", flags->options.seed, "calibration sampling seed")->capture_default_str();
  cmd->add_option("--objective", flags->objective, "quant_error or max_abs")->capture_default_str()->check(CLI::IsMember({"quant_error", "max_abs"}));
  cmd->add_option("--objective-spec", flags->spec, "fake quantization of the quant_error objective")->capture_default_str();
  cmd->add_option("--sites", flags->sites, "activation sites of the objective")->delimiter(',')->capture_default_str();
  cmd->add_option("--batch-size", flags->options.batch_size, "candidates per forward")->capture_default_str()->check(positive());
  cmd->add_option("--candidates", flags->options.candidates, "token ids to score, comma-separated (default: the whole vocabulary, control tokens excluded)")
      ->delimiter(',');
  cmd->add_option("--max-memory", flags->max_memory, "memory a candidate batch may use, e.g. 4GiB (lowers --batch-size to fit)");
  cmd->add_flag("--exhaustive", flags->exhaustive, "no pruning (for comparisons: the result is the same, only slower)");
  cmd->add_option("--state", flags->options.state_file, "state file for resuming (default: <out>.search.json)");
  cmd->add_flag("--resume", flags->resume, "continue from the state file");
  flags->ranks.add_to(*cmd);
  cmd->add_option("--out", flags->out, "the prefix artifact to write")->required();
  cmd->callback([flags] {
    // Several ranks share the candidates of every step; rank 0 writes the files.
    auto group = join_ranks(flags->ranks, flags->model);
    SearchOptions options = flags->options;
    if (group->world_size() > 1) options.group = group.get();
    options.prune = !flags->exhaustive;
    if (!flags->max_memory.empty()) options.max_memory = parse_byte_size(flags->max_memory, "--max-memory");
    options.objective.kind = flags->objective == "max_abs" ? ObjectiveKind::kMaxAbs : ObjectiveKind::kQuantError;
    options.objective.spec = parse_quant_spec(flags->spec, QuantRole::kActivation);
    options.objective.sites.clear();
    for (const auto& s : flags->sites) options.objective.sites.push_back(parse_site(s));
    if (options.state_file.empty()) options.state_file = flags->out + ".search.json";
    auto model = flags->model.load_model();
    auto tokenizer = flags->model.load_tokenizer();
    if (flags->seed == "bos") options.seed_prefix = bos_prefix_tokens(*tokenizer);
    else if (flags->seed != "none") options.seed_prefix = tokenizer->encode(flags->seed, BosPolicy::kYes);
    const Artifact a = search_prefix_artifact(*model, *tokenizer, options, flags->resume);
    if (!group->is_leader()) return;
    save_artifact(a, flags->out);
    print_prefix(a, *tokenizer, flags->out);
  });
}

void add_tune_command(CLI::App& app) {
  struct Flags {
    ModelFlags model;
    TuningOptions options;
    std::string prefix, quant = "w8a8-per-tensor-static", out;
    bool resume = false;
    RankFlags ranks;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("tune", "Quantization-aware tuning of a prefix's KV; writes the CushionCache artifact");
  flags->model.add_to(*cmd, /*with_tokenizer=*/true);
  cmd->add_option("--prefix", flags->prefix, "the prefix artifact to start from (e.g. from search)")->required();
  cmd->add_option("--quant", flags->quant, "the recipe the prefix is tuned under")->capture_default_str();
  cmd->add_option("--lambda", flags->options.lambda, "weight of the quantization error")->capture_default_str()->check(non_negative());
  cmd->add_option("--lr", flags->options.lr, "Adam learning rate")->capture_default_str()->check(positive());
  cmd->add_option("--epochs", flags->options.epochs, "passes over the training windows")->capture_default_str()->check(positive());
  cmd->add_option("--batch-size", flags->options.batch_size, "windows per step")->capture_default_str()->check(positive());
  cmd->add_option("--seq-len", flags->options.seq_len, "tokens per window")->capture_default_str()->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--samples", flags->options.samples, "training windows")->capture_default_str()->check(positive());
  cmd->add_option("--data", flags->options.data, "training corpus")->capture_default_str();
  cmd->add_option("--seed", flags->options.seed, "sampling and shuffling seed")->capture_default_str();
  cmd->add_option("--grad-clip", flags->options.grad_clip, "global gradient-norm clip (0 = off)")->capture_default_str()->check(non_negative());
  cmd->add_option("--checkpoint", flags->options.checkpoint_file, "checkpoint for resuming (default: <out>.checkpoint.safetensors)");
  cmd->add_option("--checkpoint-every", flags->options.checkpoint_every, "steps between checkpoints (also saved on SIGINT and at the end)")
      ->capture_default_str()->check(positive());
  cmd->add_flag("--resume", flags->resume, "continue from the checkpoint");
  flags->ranks.add_to(*cmd);
  cmd->add_option("--out", flags->out, "the tuned artifact to write")->required();
  cmd->callback([flags] {
    // Several ranks split every batch (data-parallel); rank 0 writes the files.
    auto group = join_ranks(flags->ranks, flags->model);
    TuningOptions options = flags->options;
    if (group->world_size() > 1) options.group = group.get();
    if (options.checkpoint_file.empty()) options.checkpoint_file = flags->out + ".checkpoint.safetensors";
    auto tokenizer = flags->model.load_tokenizer();
    const QuantRecipe recipe = load_recipe(flags->quant);
    const ModelFactory load = [&] { return flags->model.load_model(); };
    const Artifact start = load_artifact(flags->prefix);  // bound to the model (and checked) by the tuning
    const Artifact tuned = tune_prefix_artifact(load, *tokenizer, start, recipe, options, flags->resume);
    if (!group->is_leader()) return;
    save_artifact(tuned, flags->out);
    print_prefix(tuned, *tokenizer, flags->out);
  });
}

void add_baseline_command(CLI::App& app) {
  struct Flags {
    ModelFlags model;
    PrefixQuantOptions prefixquant;
    std::string kind, quant, out;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("baseline", "A baseline prefix artifact in seconds: BOS only, or PrefixQuant-style");
  flags->model.add_to(*cmd, /*with_tokenizer=*/true);
  cmd->add_option("--kind", flags->kind, "bos or prefixquant")->required()->check(CLI::IsMember({"bos", "prefixquant"}));
  cmd->add_option("--threshold", flags->prefixquant.threshold, "prefixquant: outlier if max/median exceeds this")->capture_default_str();
  cmd->add_option("--samples", flags->prefixquant.samples, "prefixquant: calibration windows")->capture_default_str()->check(positive());
  cmd->add_option("--quant", flags->quant, "also store static ranges of this recipe calibrated with the prefix");
  cmd->add_option("--out", flags->out, "the artifact to write")->required();
  cmd->callback([flags] {
    auto tokenizer = flags->model.load_tokenizer();
    const ModelFactory load = [&] { return flags->model.load_model(); };
    Artifact a = baseline_artifact(*load(), *tokenizer, flags->kind, flags->prefixquant);
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
