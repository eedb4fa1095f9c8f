// Evaluating a model in float and under quantization recipes, one after another, each
// on a freshly loaded copy (recipes change weights in place), with one prefix computed
// by the float model and adapted to each variant. This is what `eval --quant` runs and
// what produces the presets table in docs/quantization.md.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cushioncache/artifact/artifact.h"
#include "cushioncache/eval/evaluate.h"
#include "cushioncache/model/causal_lm.h"
#include "cushioncache/quant/calibration.h"
#include "cushioncache/quant/quantize_model.h"
#include "cushioncache/quant/recipe.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache {

struct VariantResult {
  std::string label;      // "float" or the recipe's name
  nlohmann::json recipe;  // null for float
  std::string calibration;
  std::string execution = "fake";  // "fake" (fake quantization) or "int8" (the INT8 kernels)
  EvalReport report;
};

struct VariantPlan {
  std::vector<std::string> variants;  // "float", preset names or .yaml recipes
  EvaluationPlan evaluation;          // its prefix field is ignored: see prefix
  // The prefix, as the float model computed or tuned it; nullptr = none. Its ranges are
  // used for a variant of the recipe they were calibrated for, instead of calibrating.
  const Artifact* prefix = nullptr;
  std::string prefix_description;
  // Quantized variants run on the INT8 kernels (QuantizedModel::execute_int8) instead of
  // fake quantization; a recipe the kernels cannot run is kUnsupported.
  bool int8_execution = false;
  // Overrides every recipe's calibration.include_bos (eval --calibration-include-bos,
  // run's calibration.include_bos).
  std::optional<bool> calibration_include_bos;
  // Override every recipe's calibration.samples / calibration.seq_len (eval
  // --calibration-samples / --calibration-seq-len): a smaller calibration on a slow machine.
  std::optional<std::int64_t> calibration_samples, calibration_seq_len;
};

using ModelFactory = std::function<std::unique_ptr<CausalLM>()>;

// Applies recipes to models the way every command does: static ranges calibrated behind
// the float prefix (calibration sets shared between recipes with the same settings), or
// taken from the prefix artifact when they were calibrated for this recipe (the same
// name and the same definition: to_json equal); SmoothQuant always calibrates; on the
// INT8 kernels when asked.
class VariantQuantizer {
 public:
  // `prefix` (may be null) must outlive this object.
  VariantQuantizer(const Tokenizer& tokenizer, const Artifact* prefix, bool int8_execution);

  struct Applied {
    std::unique_ptr<QuantizedModel> quantized;  // keeps the quantizers on the model
    std::string calibration;                    // where the static ranges came from ("" if none)
  };
  // Quantizes `model` (a fresh float copy: weights change in place) for `recipe`.
  Applied apply(CausalLM& model, const QuantRecipe& recipe);

 private:
  const Tokenizer& tokenizer_;
  const Artifact* prefix_;
  bool int8_execution_;
  std::map<std::string, CalibrationSet> calibrations_;  // by the recipe's calibration settings
};

std::vector<VariantResult> evaluate_variants(const ModelFactory& load_model, const Tokenizer& tokenizer, const VariantPlan& plan,
                                             const std::string& model_path);

// {"model": ..., "runs": [{"variant", "recipe", "calibration", "settings", "perplexity", "tasks"}]}
nlohmann::json to_json(const std::vector<VariantResult>& results);
// One run: its full table; several: one row per variant, perplexity per corpus and each
// task's headline metric (acc_norm where reported, else acc).
std::string format_variants_table(const std::vector<VariantResult>& results);

}  // namespace cushioncache
