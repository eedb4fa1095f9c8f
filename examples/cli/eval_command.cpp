#include <cstdio>
#include <memory>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/files.h"
#include "cushioncache/core/log.h"
#include "cushioncache/eval/tasks.h"
#include "cushioncache/pipeline/quantized_eval.h"
#include "cushioncache/quant/recipe.h"

namespace cushioncache::cli {

void add_eval_command(CLI::App& app) {
  struct Flags {
    ModelFlags model;
    SettingFlags settings;
    std::string out, bos, prefix_text, prefix;
    std::vector<std::string> quant;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("eval", "Perplexity (WikiText-2, C4) and lm-eval-harness zero-shot tasks, float or quantized");
  flags->model.add_to(*cmd, /*with_tokenizer=*/true);
  SettingFlags& s = flags->settings;
  s.add_list(*cmd, "--ppl", "eval.ppl");
  s.add_list(*cmd, "--tasks", "eval.tasks");
  cmd->add_option("--quant", flags->quant,
                  "variants to evaluate, in order: float, a preset (w8a8-per-tensor-static, w8a8-per-tensor-dynamic, "
                  "w8a8-per-token-dynamic, sq-o3, sq-o2, sq-o1, sq-o3-all, sq-o2-all, sq-o1-all), a recipe .yaml, or all "
                  "(float + every preset); default float")
      ->delimiter(',');
  s.add(*cmd, "--exec", "exec");
  s.add(*cmd, "--calibration-include-bos", "calibration.include_bos");
  s.add(*cmd, "--calibration-samples", "calibration.samples");
  s.add(*cmd, "--calibration-seq-len", "calibration.seq_len");
  s.add(*cmd, "--seq-len", "eval.seq_len");
  s.add(*cmd, "--max-windows", "eval.max_windows");
  s.add(*cmd, "--limit", "eval.limit");
  s.add(*cmd, "--batch-size", "eval.batch_size");
  s.add(*cmd, "--ppl-batch-size", "eval.ppl_batch_size");
  cmd->add_option("--bos", flags->bos, "BOS before evaluated text: auto|yes|no (default: tokenizer's own for perplexity "
                                       "without a prefix, none after a prefix and for tasks, as the harness)")
      ->check(CLI::IsMember({"auto", "yes", "no"}));
  cmd->add_option("--prefix-text", flags->prefix_text, "cache the KV of BOS + this text in front of every input (no text = BOS only)")
      ->expected(0, 1);
  cmd->add_option("--prefix", flags->prefix, "a CushionCache artifact: its prefix KV (and ranges, for its recipe) before every input");
  cmd->add_option("--out", flags->out, "write the results as JSON here");

  cmd->callback([flags, cmd] {
    const RunConfig settings = flags->settings.resolve();
    if (!flags->out.empty()) prepare_output_file(flags->out, "--out");
    VariantPlan plan;
    plan.evaluation = settings.eval;
    plan.evaluation.tasks.clear();
    for (const auto& t : settings.eval.tasks) {
      if (t == "all") plan.evaluation.tasks.insert(plan.evaluation.tasks.end(), standard_tasks().begin(), standard_tasks().end());
      else plan.evaluation.tasks.push_back(t);
    }
    if (plan.evaluation.corpora.empty() && plan.evaluation.tasks.empty()) plan.evaluation.corpora = {"wikitext2"};
    if (!flags->bos.empty()) plan.evaluation.bos = parse_bos_policy(flags->bos);
    for (const auto& q : flags->quant) {
      if (q == "all") {
        plan.variants.push_back("float");
        plan.variants.insert(plan.variants.end(), preset_names().begin(), preset_names().end());
      } else {
        plan.variants.push_back(q);
      }
    }
    if (plan.variants.empty()) plan.variants = {"float"};
    plan.int8_execution = settings.exec == Execution::kInt8;
    switch (settings.calibration_include_bos) {
      case CalibrationBos::kRecipe: break;
      case CalibrationBos::kCounted: plan.calibration_include_bos = true; break;
      case CalibrationBos::kNotCounted: plan.calibration_include_bos = false; break;
      case CalibrationBos::kBoth:
        throw_error(ErrorKind::kInvalidConfig, "--calibration-include-bos both: two no-prefix rows are a `run` report's; eval takes "
                    "recipe, true or false");
    }
    plan.calibration_samples = settings.calibration_samples;
    plan.calibration_seq_len = settings.calibration_seq_len;

    auto tokenizer = flags->model.load_tokenizer();
    std::optional<Artifact> prefix;
    if (!flags->prefix.empty() || cmd->count("--prefix-text") > 0)
      prefix = load_prefix_flags(*flags->model.load_model(), *tokenizer, flags->prefix,
                                 cmd->count("--prefix-text") > 0 ? &flags->prefix_text : nullptr);
    if (prefix) {
      plan.prefix = &*prefix;
      plan.prefix_description = describe_prefix(*prefix, *tokenizer);
      log::info("prefix: {}", plan.prefix_description);
    }
    const auto results = evaluate_variants([&] { return flags->model.load_model(); }, *tokenizer, plan, flags->model.model);
    std::fputs(format_variants_table(results).c_str(), stdout);
    if (!flags->out.empty()) {
      const std::string text = to_json(results).dump(2) + "\n";
      write_file_atomically(flags->out, [&](std::ostream& out) { out << text; });
      log::info("wrote {}", flags->out);
    }
  });
}

}  // namespace cushioncache::cli
