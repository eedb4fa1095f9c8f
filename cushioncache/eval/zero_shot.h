// Zero-shot task evaluation with lm-evaluation-harness's metrics: acc (argmax of the
// summed continuation log-probability), acc_norm (argmax after dividing by the choice's
// length in characters, as the harness does), LAMBADA's greedy accuracy and perplexity;
// standard errors as the harness computes them (sample standard deviation / sqrt(n) for
// means, a bootstrap of 100000 resamples for perplexity).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cushioncache/eval/tasks.h"
#include "cushioncache/model/causal_lm.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache {

struct MetricValue {
  std::string name;  // "acc", "acc_norm", "perplexity"
  double value = 0;
  double standard_error = 0;
};

struct TaskResult {
  std::string task;
  std::string source;
  std::int64_t items = 0;
  std::vector<MetricValue> metrics;
  std::int64_t truncated_requests = 0;  // continuations longer than the context (see ContinuationScore)
  double seconds = 0;
};

struct ZeroShotOptions {
  std::int64_t batch_size = 16;
  BosPolicy bos = BosPolicy::kNo;   // the harness adds no BOS for causal LMs
  const KVCache* prefix = nullptr;
  bool share_contexts = true;       // see ScoringOptions
};

TaskResult evaluate_task(CausalLM& model, const Tokenizer& tokenizer, const Task& task, const ZeroShotOptions& options);

// Per-item scores behind a TaskResult, for inspection and tests, in item order.
struct ItemScores {
  std::vector<std::vector<double>> loglikelihoods;  // per item, per choice
  std::vector<std::vector<bool>> greedy;
  std::int64_t truncated_requests = 0;
};
ItemScores score_task_items(CausalLM& model, const Tokenizer& tokenizer, const Task& task, const ZeroShotOptions& options);

// Python's len() of a UTF-8 string: the number of code points (acc_norm's length).
std::size_t character_length(const std::string& text);

}  // namespace cushioncache
