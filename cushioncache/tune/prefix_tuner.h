// CushionCache's quantization-aware prefix tuning (the paper's step 2): the prefix KV
// cache of every layer becomes trainable (initialised from the searched prefix), the
// model's weights stay frozen, and the loss is the next-token cross-entropy of the
// fake-quantized model (straight-through gradients; ranges are constants) plus lambda
// times the quantization error of the chosen sites. Adam with gradient clipping over
// seeded calibration windows; loss components logged per step; checkpoints that resume.
// Across processes (TuningOptions::group) it runs data-parallel: each rank takes every
// world_size-th window of a batch and the prefix's gradients are summed over the ranks,
// so every rank applies the same update as one process would.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cushioncache/distributed/process_group.h"
#include "cushioncache/model/causal_lm.h"
#include "cushioncache/search/objective.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache {

struct TuningOptions {
  double lambda = 0.01;            // weight of the quantization error
  double lr = 1e-3;                // Adam learning rate on the K/V tensors
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  std::int64_t epochs = 2;
  std::int64_t batch_size = 4;
  std::int64_t seq_len = 512;      // capped by the context left after the prefix
  std::int64_t samples = 64;       // training windows
  std::string data = "c4";
  std::uint64_t seed = 1;
  double grad_clip = 1.0;          // on the global gradient norm; 0 = off
  ObjectiveOptions quant_error;    // the L_q of the loss (per token: summed over sites and blocks)
  std::string checkpoint_file;     // empty = no checkpoints (written by rank 0)
  std::int64_t checkpoint_every = 10;  // steps
  // The processes sharing each batch (not owned); null = this process alone. Not part of
  // the saved settings.
  ProcessGroup* group = nullptr;
};

nlohmann::json to_json(const TuningOptions& options);

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
  QuantAwarePrefixTuner(CausalLM& model, const Tokenizer& tokenizer, TuningOptions options);

  // Tunes a copy of `initial` (batch 1); with resume, continues from the checkpoint file.
  TuningResult tune(const KVCache& initial, bool resume = false);

  // Mean loss (cross-entropy + lambda * quantization error) over the training windows.
  double evaluate(const KVCache& prefix);

 private:
  struct Batch {
    double loss, cross_entropy, quant_error;
    at::Tensor loss_tensor;
  };
  Batch loss_on(const KVCache& prefix, const std::vector<std::size_t>& rows, bool with_graph);
  // This rank's share of `rows` (every world_size-th), and the fraction of rows it holds.
  std::vector<std::size_t> my_rows(const std::vector<std::size_t>& rows) const;
  // Sums `values` over the ranks (a no-op alone); `what` names the collective in errors.
  void sum_over_ranks(at::Tensor& values, const std::string& what) const;

  CausalLM& model_;
  TuningOptions options_;
  std::vector<std::vector<std::int64_t>> windows_;
};

}  // namespace cushioncache
