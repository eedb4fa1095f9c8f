// A quantization recipe: what the weights and the activations at the linear inputs
// become, optional SmoothQuant, optional attention/KV-cache quantization, which
// registered quantizer does it, and the calibration data for static ranges. The paper's
// settings are presets selected by name; users write their own in YAML.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cushioncache/model/sites.h"
#include "cushioncache/quant/spec.h"

namespace cushioncache {

struct SmoothQuantOptions {
  double alpha = 0.8;
  // Linear inputs whose activation scale migrates into the weights.
  std::vector<Site> sites = {Site::kAttnInput, Site::kOProjInput, Site::kMlpInput, Site::kDownProjInput};
};

struct CalibrationOptions {
  std::string data = "c4";  // a corpus name or path (io/corpus.h)
  std::int64_t samples = 128;
  std::int64_t seq_len = 512;  // capped by the model's context
  std::uint64_t seed = 0;
};

struct QuantRecipe {
  std::string name;
  QuantSpec weights;      // role kWeight
  QuantSpec activations;  // role kActivation, at every linear input inside the blocks
  std::string quantizer = "uniform";  // a registered quantizer kind
  std::optional<SmoothQuantOptions> smoothquant;
  bool attention_matmuls = false;  // also quantize q, k, v and the attention probabilities
  bool kv_cache = false;           // also quantize k and v as they are cached
  CalibrationOptions calibration;

  // Static activation ranges or SmoothQuant need calibration data.
  bool needs_calibration() const;
  void validate() const;
};

// w8a8-per-tensor-static, w8a8-per-tensor-dynamic, w8a8-per-token-dynamic, and with
// SmoothQuant (alpha 0.8) sq-o3, sq-o2, sq-o1. Weights: 8-bit symmetric per channel;
// activations: 8-bit asymmetric min-max, as in the paper.
const std::vector<std::string>& preset_names();

// A preset name or a YAML file; errors name the file, line and key.
QuantRecipe load_recipe(const std::string& name_or_path);

nlohmann::json to_json(const QuantRecipe& recipe);

}  // namespace cushioncache
