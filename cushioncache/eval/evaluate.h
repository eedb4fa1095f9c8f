// One evaluation run as the `eval` command performs it: perplexity on corpora and
// zero-shot tasks for a model as it is (float or quantized), optionally behind a cached
// prefix, collected into a report that prints as a table and saves as JSON.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cushioncache/eval/perplexity.h"
#include "cushioncache/eval/zero_shot.h"
#include "cushioncache/model/causal_lm.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache {

struct EvaluationPlan {
  std::vector<std::string> corpora;  // "wikitext2", "c4" or text/JSONL paths
  std::vector<std::string> tasks;    // task specs (see load_task)
  std::int64_t seq_len = 0;          // 0 = min(2048, context - prefix)
  std::int64_t max_windows = 0;      // 0 = all (c4 is capped at 256 by its protocol)
  std::int64_t limit = 0;            // items per task, 0 = all
  std::int64_t ppl_batch_size = 1;
  std::int64_t task_batch_size = 16;
  // Default: perplexity text gets the tokenizer's own BOS without a prefix and none after
  // one; tasks get none (the harness's default for causal LMs).
  std::optional<BosPolicy> bos;
  const KVCache* prefix = nullptr;
  std::string prefix_description;    // e.g. the prefix text, for the report
};

struct CorpusResult {
  std::string corpus;
  std::string source;
  PerplexityResult result;
};

struct EvalReport {
  nlohmann::json model;     // describe_model()
  nlohmann::json settings;  // the resolved plan
  std::vector<CorpusResult> perplexity;
  std::vector<TaskResult> tasks;
};

EvalReport evaluate(CausalLM& model, const Tokenizer& tokenizer, const EvaluationPlan& plan, nlohmann::json model_description);

nlohmann::json to_json(const EvalReport& report);
std::string format_table(const EvalReport& report);
void write_report(const EvalReport& report, const std::filesystem::path& path);  // atomic

}  // namespace cushioncache
