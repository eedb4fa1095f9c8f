#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "cushioncache/core/log.h"
#include "cushioncache/eval/evaluate.h"
#include "cushioncache/model/identity.h"

namespace cushioncache::cli {

void add_eval_command(CLI::App& app) {
  struct Flags {
    ModelFlags model;
    std::string out, bos, prefix_text;
    std::vector<std::string> ppl, tasks;
    EvaluationPlan plan;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("eval", "Perplexity (WikiText-2, C4) and lm-eval-harness zero-shot tasks");
  flags->model.add_to(*cmd, /*with_tokenizer=*/true);
  cmd->add_option("--ppl", flags->ppl, "corpora: wikitext2, c4, or text/JSONL paths (default wikitext2 when no --tasks)")
      ->delimiter(',');
  cmd->add_option("--tasks", flags->tasks,
                  "lambada, hellaswag, piqa, winogrande, openbookqa, copa, arc_easy, boolq, rte=PATH, mc:PATH, or all")
      ->delimiter(',');
  cmd->add_option("--seq-len", flags->plan.seq_len, "perplexity window (default: min(2048, context - prefix))")->check(CLI::PositiveNumber);
  cmd->add_option("--max-windows", flags->plan.max_windows, "evaluate at most N windows per corpus")->check(CLI::PositiveNumber);
  cmd->add_option("--limit", flags->plan.limit, "first N items of each task")->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", flags->plan.task_batch_size, "task requests per forward")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--ppl-batch-size", flags->plan.ppl_batch_size, "perplexity windows per forward")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--bos", flags->bos, "BOS before evaluated text: auto|yes|no (default: tokenizer's own for perplexity "
                                       "without a prefix, none after a prefix and for tasks, as the harness)")
      ->check(CLI::IsMember({"auto", "yes", "no"}));
  cmd->add_option("--prefix-text", flags->prefix_text, "cache the KV of BOS + this text in front of every input (\"\" = BOS only)");
  cmd->add_option("--out", flags->out, "write the results as JSON here");

  cmd->callback([flags, cmd] {
    EvaluationPlan plan = flags->plan;
    plan.corpora = flags->ppl;
    for (const auto& t : flags->tasks) {
      if (t == "all") plan.tasks.insert(plan.tasks.end(), standard_tasks().begin(), standard_tasks().end());
      else plan.tasks.push_back(t);
    }
    if (plan.corpora.empty() && plan.tasks.empty()) plan.corpora = {"wikitext2"};
    if (!flags->bos.empty()) plan.bos = parse_bos_policy(flags->bos);

    auto model = flags->model.load_model();
    auto tokenizer = flags->model.load_tokenizer(*model);

    KVCache prefix;
    if (cmd->count("--prefix-text") > 0) {
      prefix = compute_kv_cache(*model, tokenizer->encode(flags->prefix_text, BosPolicy::kYes));
      plan.prefix = &prefix;
      plan.prefix_description = "BOS + \"" + flags->prefix_text + "\"";
      log::info("prefix: {} ({} tokens)", plan.prefix_description, prefix.length());
    }
    const EvalReport report = evaluate(*model, *tokenizer, plan, describe_model(*model, flags->model.model));
    std::fputs(format_table(report).c_str(), stdout);
    if (!flags->out.empty()) {
      write_report(report, flags->out);
      log::info("wrote {}", flags->out);
    }
  });
}

}  // namespace cushioncache::cli
