// SmoothQuant (Xiao et al. 2023): migrate the activation outliers of each linear input
// into the weights with a per-channel scale s_j = max|X_j|^alpha / max|W_j|^(1 - alpha).
// The activations are divided by s (folded into the producer: the preceding norm's gain,
// v_proj's rows for o_proj, up_proj's rows for down_proj) and the consuming weight columns
// multiplied by s, so the float model computes the same function. Which sites a recipe
// smooths is SmoothQuantOptions::sites (quant/recipe.h): SmoothQuant's own choice is the
// two inputs after a norm; o_proj and down_proj are ours to add.
#pragma once

#include <map>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "cushioncache/model/causal_lm.h"
#include "cushioncache/quant/calibration.h"

namespace cushioncache {

using SiteKey = std::pair<int, Site>;  // (layer, site)

// max |x| per channel at the given sites, over the calibration set's text tokens (a
// prefix, when given, stands before every sequence and is not counted).
std::map<SiteKey, at::Tensor> collect_channel_absmax(CausalLM& model, const CalibrationSet& calibration, const KVCache* prefix,
                                                     const std::vector<Site>& sites);

// Folds the smoothing scales into the model's weights; returns the scale per site. Sites
// whose family has no producer for them (CausalLM::site_producers) are skipped with a
// warning. A scale at o_proj's input divides the value projection, so it changes the
// model's value basis: KV caches computed before are refused (QuantizedModel adapts its
// prefix).
std::map<SiteKey, at::Tensor> apply_smoothquant(CausalLM& model, const std::map<SiteKey, at::Tensor>& activation_absmax,
                                                double alpha);

}  // namespace cushioncache
