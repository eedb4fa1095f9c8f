#include <cstdio>
#include <memory>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "cushioncache/core/files.h"
#include "cushioncache/core/log.h"
#include "cushioncache/eval/tasks.h"
#include "cushioncache/pipeline/quantized_eval.h"
#include "cushioncache/quant/recipe.h"

namespace cushioncache::cli {

void add_eval_command(CLI::App& app) {
  struct Flags {
    ModelFlags model;
    std::string out, bos, prefix_text, prefix, exec = "fake", calibration_bos;
    std::int64_t calibration_samples = 0, calibration_seq_len = 0;
    std::vector<std::string> ppl, tasks, quant;
    EvaluationPlan plan;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("eval", "Perplexity (WikiText-2, C4) and lm-eval-harness zero-shot tasks, float or quantized");
  flags->model.add_to(*cmd, /*with_tokenizer=*/true);
  cmd->add_option("--ppl", flags->ppl, "corpora: wikitext2, c4, or text/JSONL paths (default wikitext2 when no --tasks)")
      ->delimiter(',');
  cmd->add_option("--tasks", flags->tasks,
                  "lambada, hellaswag, piqa, winogrande, openbookqa, copa, arc_easy, boolq, rte=PATH, mc:PATH, or all")
      ->delimiter(',');
  cmd->add_option("--quant", flags->quant,
                  "variants to evaluate, in order: float, a preset (w8a8-per-tensor-static, w8a8-per-tensor-dynamic, "
                  "w8a8-per-token-dynamic, sq-o3, sq-o2, sq-o1, sq-o3-all, sq-o2-all, sq-o1-all), a recipe .yaml, or all "
                  "(float + every preset); default float")
      ->delimiter(',');
  cmd->add_option("--exec", flags->exec,
                  "fake: fake quantization; int8: quantized variants run on the INT8 kernels (8-bit per-tensor activations, "
                  "8-bit symmetric weights; CPU, oneDNN)")
      ->capture_default_str()->check(CLI::IsMember({"fake", "int8"}));
  cmd->add_option("--calibration-include-bos", flags->calibration_bos,
                  "true|false: whether the BOS starting each calibration window counts toward static ranges and SmoothQuant "
                  "(overrides the recipes' calibration.include_bos; default: theirs, true)")
      ->check(CLI::IsMember({"true", "false"}));
  cmd->add_option("--calibration-samples", flags->calibration_samples,
                  "calibration windows of every recipe (overrides calibration.samples; default: theirs, 128)")
      ->check(positive());
  cmd->add_option("--calibration-seq-len", flags->calibration_seq_len,
                  "tokens per calibration window of every recipe (overrides calibration.seq_len; default: theirs, 512)")
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--seq-len", flags->plan.seq_len, "perplexity window (default: min(2048, context - prefix))")->check(positive());
  cmd->add_option("--max-windows", flags->plan.max_windows, "evaluate at most N windows per corpus")->check(positive());
  cmd->add_option("--limit", flags->plan.limit, "first N items of each task")->check(positive());
  cmd->add_option("--batch-size", flags->plan.task_batch_size, "task requests per forward")->capture_default_str()->check(positive());
  cmd->add_option("--ppl-batch-size", flags->plan.ppl_batch_size, "perplexity windows per forward")->capture_default_str()->check(positive());
  cmd->add_option("--bos", flags->bos, "BOS before evaluated text: auto|yes|no (default: tokenizer's own for perplexity "
                                       "without a prefix, none after a prefix and for tasks, as the harness)")
      ->check(CLI::IsMember({"auto", "yes", "no"}));
  cmd->add_option("--prefix-text", flags->prefix_text, "cache the KV of BOS + this text in front of every input (no text = BOS only)")
      ->expected(0, 1);
  cmd->add_option("--prefix", flags->prefix, "a CushionCache artifact: its prefix KV (and ranges, for its recipe) before every input");
  cmd->add_option("--out", flags->out, "write the results as JSON here");

  cmd->callback([flags, cmd] {
    if (!flags->out.empty()) prepare_output_file(flags->out, "--out");
    VariantPlan plan;
    plan.evaluation = flags->plan;
    plan.evaluation.corpora = flags->ppl;
    for (const auto& t : flags->tasks) {
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
    plan.int8_execution = flags->exec == "int8";
    if (!flags->calibration_bos.empty()) plan.calibration_include_bos = flags->calibration_bos == "true";
    if (flags->calibration_samples > 0) plan.calibration_samples = flags->calibration_samples;
    if (flags->calibration_seq_len > 0) plan.calibration_seq_len = flags->calibration_seq_len;

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
