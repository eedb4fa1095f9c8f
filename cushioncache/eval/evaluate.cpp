#include "cushioncache/eval/evaluate.h"

#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/core/files.h"
#include "cushioncache/core/log.h"
#include "cushioncache/io/corpus.h"
#include "cushioncache/eval/tasks.h"

namespace cushioncache {
namespace {

// Fixed point for ordinary values, scientific once they would not fit the column.
std::string number(double v) { return std::abs(v) < 1e6 ? fmt::format("{:.4f}", v) : fmt::format("{:.4e}", v); }

const char* bos_name(BosPolicy bos) {
  switch (bos) {
    case BosPolicy::kAuto: return "auto";
    case BosPolicy::kYes: return "yes";
    case BosPolicy::kNo: return "no";
  }
  return "?";
}

}  // namespace

EvalReport evaluate(CausalLM& model, const Tokenizer& tokenizer, const EvaluationPlan& plan, nlohmann::json model_description) {
  if (plan.corpora.empty() && plan.tasks.empty()) throw_error(ErrorKind::kInvalidArgument, "nothing to evaluate: no corpus and no task");
  if (tokenizer.vocab_size() > model.config().vocab_size)
    throw_error(ErrorKind::kMismatch, "the tokenizer has {} tokens but the model's vocabulary is {}", tokenizer.vocab_size(),
                model.config().vocab_size);
  const std::int64_t prefix_len = plan.prefix != nullptr ? plan.prefix->length() : 0;
  const std::int64_t seq_len =
      plan.seq_len > 0 ? plan.seq_len : std::min<std::int64_t>(2048, model.config().max_position_embeddings - prefix_len);
  const BosPolicy ppl_bos = plan.bos.value_or(plan.prefix != nullptr ? BosPolicy::kNo : BosPolicy::kAuto);
  const BosPolicy task_bos = plan.bos.value_or(BosPolicy::kNo);

  EvalReport report;
  report.model = std::move(model_description);
  report.settings = {{"seq_len", seq_len},
                     {"max_windows", plan.max_windows},
                     {"limit", plan.limit},
                     {"ppl_batch_size", plan.ppl_batch_size},
                     {"task_batch_size", plan.task_batch_size},
                     {"ppl_bos", bos_name(ppl_bos)},
                     {"task_bos", bos_name(task_bos)},
                     {"prefix_tokens", prefix_len},
                     {"prefix", plan.prefix_description}};

  for (const auto& name : plan.corpora) {
    const Corpus corpus = load_corpus(name);
    log::info("perplexity on {} ({})", corpus.name, corpus.source);
    PerplexityOptions options;
    options.seq_len = seq_len;
    options.max_windows = plan.max_windows;
    if (corpus.max_windows > 0) options.max_windows = options.max_windows > 0 ? std::min(options.max_windows, corpus.max_windows) : corpus.max_windows;
    options.batch_size = plan.ppl_batch_size;
    options.prefix = plan.prefix;
    const auto tokens = tokenizer.encode(corpus.text, ppl_bos);
    report.perplexity.push_back({corpus.name, corpus.source, evaluate_perplexity(model, tokens, options)});
  }
  for (const auto& spec : plan.tasks) {
    const Task task = load_task(spec, plan.limit);
    log::info("task {}: {} items from {}", task.name, task.items.size(), task.source);
    ZeroShotOptions options;
    options.batch_size = plan.task_batch_size;
    options.bos = task_bos;
    options.prefix = plan.prefix;
    report.tasks.push_back(evaluate_task(model, tokenizer, task, options));
  }
  return report;
}

nlohmann::json to_json(const EvalReport& report) {
  nlohmann::json j = {{"model", report.model}, {"settings", report.settings}};
  j["perplexity"] = nlohmann::json::object();
  for (const auto& c : report.perplexity)
    j["perplexity"][c.corpus] = {{"ppl", c.result.perplexity},
                                 {"mean_nll", c.result.mean_nll},
                                 {"windows", c.result.windows},
                                 {"seq_len", c.result.seq_len},
                                 {"scored_tokens", c.result.scored_tokens},
                                 {"corpus_tokens", c.result.corpus_tokens},
                                 {"source", c.source},
                                 {"seconds", c.result.seconds}};
  j["tasks"] = nlohmann::json::object();
  for (const auto& t : report.tasks) {
    nlohmann::json metrics = nlohmann::json::object();
    for (const auto& m : t.metrics) metrics[m.name] = {{"value", m.value}, {"stderr", m.standard_error}};
    j["tasks"][t.task] = {{"metrics", metrics},
                          {"n", t.items},
                          {"truncated_requests", t.truncated_requests},
                          {"source", t.source},
                          {"seconds", t.seconds}};
  }
  return j;
}

std::string format_table(const EvalReport& report) {
  std::string out;
  if (!report.perplexity.empty()) {
    out += fmt::format("{:<12} {:>8} {:>8} {:>12} {:>12}\n", "corpus", "seq_len", "windows", "tokens", "perplexity");
    for (const auto& c : report.perplexity)
      out += fmt::format("{:<12} {:>8} {:>8} {:>12} {:>12}\n", c.corpus, c.result.seq_len, c.result.windows, c.result.scored_tokens,
                         number(c.result.perplexity));
  }
  if (!report.tasks.empty()) {
    if (!out.empty()) out += "\n";
    out += fmt::format("{:<12} {:<11} {:>11} {:>11} {:>7}\n", "task", "metric", "value", "stderr", "n");
    for (const auto& t : report.tasks)
      for (std::size_t i = 0; i < t.metrics.size(); ++i)
        out += fmt::format("{:<12} {:<11} {:>11} {:>11} {:>7}\n", i == 0 ? t.task : "", t.metrics[i].name, number(t.metrics[i].value),
                           number(t.metrics[i].standard_error), t.items);
  }
  return out;
}

void write_report(const EvalReport& report, const std::filesystem::path& path) {
  const std::string text = to_json(report).dump(2) + "\n";
  write_file_atomically(path, [&](std::ostream& out) { out << text; });
}

}  // namespace cushioncache
