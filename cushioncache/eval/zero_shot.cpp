#include "cushioncache/eval/zero_shot.h"

#include <chrono>
#include <cmath>
#include <random>

#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"
#include "cushioncache/core/progress.h"
#include "cushioncache/eval/loglikelihood.h"

namespace cushioncache {
namespace {

// The harness's mean_stderr: sample standard deviation (n - 1) over sqrt(n).
MetricValue mean_metric(const std::string& name, const std::vector<double>& values) {
  const double n = static_cast<double>(values.size());
  double mean = 0;
  for (double v : values) mean += v;
  mean /= n;
  double ss = 0;
  for (double v : values) ss += (v - mean) * (v - mean);
  return {name, mean, values.size() > 1 ? std::sqrt(ss / (n - 1)) / std::sqrt(n) : 0.0};
}

// The harness's perplexity aggregation, exp(-mean log-likelihood), with its bootstrap
// standard error (100000 resamples; the resampling stream is ours, so the last digits
// differ from a harness run, within the bootstrap's own noise).
MetricValue perplexity_metric(const std::vector<double>& loglikelihoods) {
  const auto n = loglikelihoods.size();
  double sum = 0;
  for (double v : loglikelihoods) sum += v;
  const double value = std::exp(-sum / static_cast<double>(n));
  constexpr int kResamples = 100000;
  std::mt19937_64 rng(1234);
  std::uniform_int_distribution<std::size_t> pick(0, n - 1);
  double mean = 0, m2 = 0;  // Welford over the bootstrap statistics
  for (int r = 1; r <= kResamples; ++r) {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += loglikelihoods[pick(rng)];
    const double stat = std::exp(-s / static_cast<double>(n));
    const double delta = stat - mean;
    mean += delta / r;
    m2 += delta * (stat - mean);
  }
  return {"perplexity", value, n > 1 ? std::sqrt(m2 / (kResamples - 1)) : 0.0};
}

std::size_t argmax(const std::vector<double>& v) {
  std::size_t best = 0;
  for (std::size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[best]) best = i;  // first maximum wins, as numpy.argmax
  return best;
}

}  // namespace

std::size_t character_length(const std::string& text) {
  std::size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

ItemScores score_task_items(CausalLM& model, const Tokenizer& tokenizer, const Task& task, const ZeroShotOptions& options) {
  std::vector<TokenizedRequest> requests;
  for (std::size_t i = 0; i < task.items.size(); ++i)
    for (const auto& r : task.items[i].requests) {
      requests.push_back(encode_pair(tokenizer, r.context, r.continuation, options.bos));
      if (requests.back().continuation.empty())
        throw_error(ErrorKind::kInvalidArgument, "task '{}' item {}: continuation '{}' encodes to no tokens", task.name, i + 1,
                    r.continuation);
    }
  Progress progress(task.name, static_cast<std::int64_t>(requests.size()), "req");
  ScoringOptions scoring;
  scoring.batch_size = options.batch_size;
  scoring.prefix = options.prefix;
  scoring.share_contexts = options.share_contexts;
  const auto scores = score_continuations(model, requests, scoring, &progress);
  progress.finish();

  ItemScores out;
  out.loglikelihoods.resize(task.items.size());
  out.greedy.resize(task.items.size());
  std::size_t k = 0;
  for (std::size_t i = 0; i < task.items.size(); ++i)
    for (std::size_t j = 0; j < task.items[i].requests.size(); ++j, ++k) {
      out.loglikelihoods[i].push_back(scores[k].logprob);
      out.greedy[i].push_back(scores[k].greedy);
      out.truncated_requests += scores[k].truncated;
    }
  if (out.truncated_requests > 0)
    log::warn("task {}: {} request(s) had continuations longer than the context; only their last tokens were scored", task.name,
              out.truncated_requests);
  return out;
}

TaskResult evaluate_task(CausalLM& model, const Tokenizer& tokenizer, const Task& task, const ZeroShotOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const ItemScores scores = score_task_items(model, tokenizer, task, options);
  const auto& lls = scores.loglikelihoods;
  const auto& greedy = scores.greedy;

  TaskResult result;
  result.task = task.name;
  result.source = task.source;
  result.items = static_cast<std::int64_t>(task.items.size());
  result.truncated_requests = scores.truncated_requests;
  if (task.type == TaskType::kLoglikelihood) {
    std::vector<double> item_ll, item_acc;
    for (std::size_t i = 0; i < lls.size(); ++i) {
      item_ll.push_back(lls[i][0]);
      item_acc.push_back(greedy[i][0] ? 1.0 : 0.0);
    }
    result.metrics.push_back(mean_metric("acc", item_acc));
    result.metrics.push_back(perplexity_metric(item_ll));
  } else {
    std::vector<double> acc, acc_norm;
    for (std::size_t i = 0; i < lls.size(); ++i) {
      const TaskItem& item = task.items[i];
      acc.push_back(argmax(lls[i]) == static_cast<std::size_t>(item.gold) ? 1.0 : 0.0);
      std::vector<double> normalized;
      for (std::size_t j = 0; j < lls[i].size(); ++j)
        normalized.push_back(lls[i][j] / static_cast<double>(std::max<std::size_t>(1, character_length(item.choices[j]))));
      acc_norm.push_back(argmax(normalized) == static_cast<std::size_t>(item.gold) ? 1.0 : 0.0);
    }
    result.metrics.push_back(mean_metric("acc", acc));
    if (task.reports_acc_norm) result.metrics.push_back(mean_metric("acc_norm", acc_norm));
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace cushioncache
