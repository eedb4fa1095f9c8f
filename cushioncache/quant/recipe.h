// A quantization recipe: what the weights and the activations at the linear inputs
// become, optional SmoothQuant, optional attention/KV-cache quantization, which
// registered quantizer does it, and the calibration data for static ranges. The paper's
// settings are presets selected by name; users write their own in YAML.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cushioncache/model/sites.h"
#include "cushioncache/quant/spec.h"
#include "cushioncache/tokenizer/text_windows.h"

namespace cushioncache {

// The linear inputs SmoothQuant smooths, by name in recipes:
// - "norm" (the default; SmoothQuant's own choice, smooth_lm in mit-han-lab/smoothquant):
//   the inputs that follow a norm, attn_input (q/k/v, BLOOM's query_key_value, GPT-2's
//   c_attn) and mlp_input (gate/up, OPT's fc1, dense_h_to_4h, c_fc);
// - "all": also o_proj_input and down_proj_input, folded into v_proj's and up_proj's
//   rows. In LLaMA-class models the largest outliers sit at the down_proj input, so this
//   is a different, stronger method than SmoothQuant: reports name it "all".
// A site a family cannot fold is left unsmoothed with a warning (docs/models.md).
const std::vector<Site>& smoothquant_norm_sites();
const std::vector<Site>& smoothquant_all_sites();

struct SmoothQuantOptions {
  double alpha = 0.8;
  std::vector<Site> sites = smoothquant_norm_sites();
  // "norm", "all", or "custom" for any other list.
  std::string sites_name() const;
};

// With which weights static activation ranges are observed.
enum class CalibrationWeights {
  kFloat,      // before the weights are quantized (after SmoothQuant's folding), as
               // SmoothQuant's reference and most static-calibration code do
  kQuantized,  // after: the ranges see what the quantized linears produce
};
const char* calibration_weights_name(CalibrationWeights weights);  // "float" | "quantized"

struct CalibrationOptions {
  TextWindows windows;  // c4, 128 x 512 tokens, seed 0
  // Whether the BOS that starts each window (when the tokenizer puts one first, as it
  // does for evaluated text) counts toward static ranges and SmoothQuant's maxima. Either
  // way it stays in the window, so the text after it reads as in evaluation; false
  // treats it as a prefix token: run, not counted. Behind a cached prefix the windows
  // hold no BOS and this changes nothing.
  bool include_bos = true;
  CalibrationWeights weights = CalibrationWeights::kFloat;
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
// SmoothQuant (alpha 0.8, SmoothQuant's sites) sq-o3, sq-o2, sq-o1: the paper's settings.
// Then sq-o3-all, sq-o2-all, sq-o1-all: SmoothQuant on all four linear inputs (what
// sq-o* meant before they followed SmoothQuant's definition). Weights: 8-bit symmetric
// per channel (the paper: group-wise); activations: 8-bit asymmetric min-max, as in the
// paper.
const std::vector<std::string>& preset_names();

// A preset name or a YAML file; errors name the file, line and key.
QuantRecipe load_recipe(const std::string& name_or_path);

nlohmann::json to_json(const QuantRecipe& recipe);

// One definition a baseline depends on, as this recipe sets it, as the paper states it,
// and as SmoothQuant's reference code (mit-han-lab/smoothquant) does it: the table every
// `run` report carries, so that a reader comparing with the paper sees each difference.
struct RecipeDefinition {
  std::string what, ours, paper, reference;
  bool differs_from_paper = false;  // known to differ (false where the paper is silent)
};
std::vector<RecipeDefinition> recipe_definitions(const QuantRecipe& recipe);

}  // namespace cushioncache
