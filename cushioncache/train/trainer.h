// Pretraining a LLaMA-family model from scratch (`cushioncache train`), to study how
// attention sinks and massive activations emerge and to make models that have them.
// Every training sequence starts with BOS; the rest is a window of the tokenized corpus
// (documents joined with EOS) at an offset drawn from (seed, step), so a resumed run
// sees exactly the batches an uninterrupted one would. AdamW (torch::optim) with linear
// warmup and cosine decay, global-norm clipping and gradient accumulation.
//
// The output folder is a Hugging Face model folder (config.json, model.safetensors,
// tokenizer.json) that every other command loads, plus:
//   checkpoints/step-NNNNNN/  the model at that step, its probe.json and inspect/ report;
//                             the newest also holds optimizer.pt and trainer_state.json
//   training.json             config, loss log and every probe (rewritten at each checkpoint)
//   loss.svg, sink_attention.svg, massive_activation.svg   the curves over training
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cushioncache/train/train_config.h"

namespace cushioncache {

struct TrainLogEntry {
  std::int64_t step = 0;        // optimizer steps done
  double loss = 0;              // mean cross-entropy (nats/token) of this step's batch
  double lr = 0;
  double grad_norm = 0;         // before clipping
  double tokens_per_second = 0;
};

// The emergence statistics of one checkpoint, on the probe's held-out windows
// (analysis/activation_stats.h). Per layer l, "residual" is the input of block l.
struct EmergenceProbe {
  std::int64_t step = 0;
  std::int64_t tokens = 0;                        // training tokens seen
  std::vector<double> attention_on_first;         // [layer] mean attention mass on position 0
  std::vector<double> residual_first_ratio;       // [layer] max |x| at position 0 / median |x|
  std::vector<std::int64_t> residual_first_channel;  // [layer] the dim holding it
  std::vector<double> residual_top_ratio;         // [layer] max |x| anywhere / median |x|
  std::vector<std::int64_t> residual_top_position;
  std::vector<double> down_proj_top_ratio;        // [layer] max |down_proj input| / median
  std::vector<std::int64_t> down_proj_top_position;
  std::vector<std::int64_t> down_proj_top_channel;
  double float_ppl = 0;                           // 0 when the probe skips perplexity
  double quant_ppl = 0;                           // under probe.quant
};

struct TrainResult {
  std::int64_t steps = 0;
  std::int64_t tokens = 0;
  std::vector<TrainLogEntry> log;
  std::vector<EmergenceProbe> probes;
};

struct TrainRunOptions {
  // Continue from the newest complete checkpoint in the output folder (kNotFound if there
  // is none; kMismatch naming the field if the config changed in a way that matters).
  bool resume = false;
  // Save a checkpoint after this many optimizer steps and return (0 = run to the end):
  // for jobs with a time limit, continued later with resume.
  std::int64_t stop_at_step = 0;
};

// Ctrl-C / SIGTERM save a checkpoint at the current step and stop with kInterrupted.
TrainResult train_model(const TrainConfig& config, const TrainRunOptions& options = {});

// The probe on a saved model folder (what train_model runs at each checkpoint); writes
// the inspect report to `report_folder` when it is not empty.
EmergenceProbe probe_emergence(const std::filesystem::path& model_folder, const TrainProbe& probe,
                               const std::filesystem::path& report_folder);

nlohmann::json to_json(const EmergenceProbe& probe);
nlohmann::json to_json(const TrainResult& result);

}  // namespace cushioncache
