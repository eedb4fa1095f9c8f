// CushionCache's quantization-aware prefix tuning (the paper's step 2): the prefix KV
// cache of every layer becomes trainable (initialised from the searched prefix), the
// model's weights stay frozen, and the loss is the next-token cross-entropy of the
// fake-quantized model (straight-through gradients; ranges are constants) plus lambda
// times the quantization error of the chosen sites. Adam with gradient clipping over
// seeded calibration windows (torch::optim::Adam); loss components logged per step;
// checkpoints that resume bit-exact. Across processes (RunContext::group) it runs data-parallel: each rank takes every
// world_size-th window of a batch and the prefix's gradients are summed over the ranks,
// so every rank applies the same update as one process would.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cushioncache/distributed/run_context.h"
#include "cushioncache/model/causal_lm.h"
#include "cushioncache/search/objective.h"
#include "cushioncache/tokenizer/text_windows.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache {

struct TuningOptions {
  double lambda = 0.01;            // weight of the quantization error
  double lr = 1e-3;                // Adam learning rate on the K/V tensors
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  std::int64_t epochs = 2;
  std::int64_t batch_size = 4;
  // The training windows, without BOS (the prefix takes its place), capped by the room
  // after the prefix; the seed also orders every epoch.
  TextWindows windows{"c4", 64, 512, 1};
  double grad_clip = 1.0;          // on the global gradient norm; 0 = off
  ObjectiveOptions quant_error;    // the L_q of the loss (per token: summed over sites and blocks)
  std::int64_t checkpoint_every = 10;  // steps between checkpoints in the context's state file
};

nlohmann::json to_json(const TuningOptions& options);

// kInvalidConfig unless every setting is in range (the tuner checks them; a pipeline
// checks them before any work).
void check_tuning_options(const TuningOptions& options);

struct TuningLogEntry {
  std::int64_t step = 0;
  std::int64_t epoch = 0;
  double loss = 0, cross_entropy = 0, quant_error = 0, grad_norm = 0;
};

struct TuningResult {
  KVCache prefix;                     // the tuned prefix (detached, float32)
  std::vector<TuningLogEntry> log;
  double loss_before = 0, loss_after = 0;  // over the whole training set, without gradients
  double seconds = 0;
};

class QuantAwarePrefixTuner {
 public:
  // `model` runs as it will be deployed: with its quantizers attached (QuantizedModel).
  // The context's state file is the checkpoint (a safetensors file written by the leader).
  QuantAwarePrefixTuner(CausalLM& model, const Tokenizer& tokenizer, TuningOptions options, RunContext context = {});

  // Tunes a copy of `initial` (batch 1); with context.resume, continues from the checkpoint.
  TuningResult tune(const KVCache& initial);

  // Mean loss (cross-entropy + lambda * quantization error) over the training windows
  // behind `prefix`.
  double evaluate(const KVCache& prefix);

 private:
  struct Batch {
    double loss, cross_entropy, quant_error;
    at::Tensor loss_tensor;
  };
  // The training windows behind a prefix of `prefix_tokens` (sampled once per length).
  const std::vector<std::vector<std::int64_t>>& windows_behind(std::int64_t prefix_tokens);
  Batch loss_on(const KVCache& prefix, const std::vector<std::size_t>& rows, bool with_graph);
  // This rank's share of `rows` (every world_size-th), and the fraction of rows it holds.
  std::vector<std::size_t> my_rows(const std::vector<std::size_t>& rows) const;
  // Sums `values` over the ranks (a no-op alone); `what` names the collective in errors.
  void sum_over_ranks(at::Tensor& values, const std::string& what) const;

  CausalLM& model_;
  const Tokenizer& tokenizer_;
  TuningOptions options_;
  RunContext context_;
  std::int64_t windows_prefix_tokens_ = -1;  // the prefix length windows_ were sampled for
  std::vector<std::vector<std::int64_t>> windows_;
};

}  // namespace cushioncache
