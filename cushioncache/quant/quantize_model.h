// Applying a recipe to a model: SmoothQuant folding (if asked), weights fake-quantized
// once, and activation quantizers at every linear input inside the blocks (q/k/v share
// one input; the LM head stays in full precision), plus the attention matmul inputs and
// the KV cache when asked. Static ranges are calibrated on the calibration set, behind
// the prefix when one is given, with the weights still in float unless the recipe says
// otherwise (calibration.weights); prefix positions are never quantized nor counted.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "cushioncache/model/causal_lm.h"
#include "cushioncache/quant/calibration.h"
#include "cushioncache/quant/quantizer.h"
#include "cushioncache/quant/recipe.h"

namespace cushioncache {

class QuantizationHook;

class QuantizedModel {
 public:
  // Modifies `model` in place (its weights are smoothed and quantized for good) and
  // attaches the activation quantizers for the lifetime of this object. `calibration`
  // is required when recipe.needs_calibration(). `float_prefix`, when given, is the
  // prefix KV computed by the float model: calibration runs behind it, and prefix()
  // returns it adapted to the smoothed model. `ranges`, when given (e.g. from an
  // artifact), replace the calibration of static ranges (SmoothQuant still calibrates).
  QuantizedModel(CausalLM& model, QuantRecipe recipe, const CalibrationSet* calibration, const KVCache* float_prefix = nullptr,
                 const std::map<std::string, at::Tensor>* ranges = nullptr);
  ~QuantizedModel();
  QuantizedModel(const QuantizedModel&) = delete;
  QuantizedModel& operator=(const QuantizedModel&) = delete;

  const QuantRecipe& recipe() const { return recipe_; }

  // The prefix to place before inputs of this model (nullptr without one). SmoothQuant
  // divides v_proj's rows by the o_proj scales, so the cached values are divided alike;
  // keys and everything else are unchanged. The model then refuses the float prefix
  // (CausalLM::value_basis), so the stale one cannot be used by mistake.
  const KVCache* prefix() const { return prefix_.empty() ? nullptr : &prefix_; }
  // Another float prefix (computed before this object smoothed the model) adapted alike.
  KVCache adapt_prefix(const KVCache& float_prefix) const;
  std::size_t activation_quantizer_count() const;
  // The activation quantizer at (layer, site), or nullptr.
  const Quantizer* activation_quantizer(int layer, Site site) const;
  Quantizer* activation_quantizer(int layer, Site site);

  // The calibrated static ranges, "<quantizer name>.<key>" (e.g. "layers.3.attn_input.max");
  // set_ranges() restores them and refuses ranges for other sites or missing ones.
  std::map<std::string, at::Tensor> ranges() const;
  void set_ranges(const std::map<std::string, at::Tensor>& ranges);

  // Real W8A8 execution: every linear inside the blocks of the model this object
  // quantized runs on the INT8 kernels (quant/int8_linear.h) with the weights as int8
  // and its input quantized by the kernel with the calibrated (or dynamic) per-tensor
  // parameters, in place of fake quantization at those sites. Same results up to float
  // rounding. kUnsupported saying why when the recipe does not fit the kernels (see
  // int8_execution_blocker) or the device has no INT8 kernels. The float weights of those
  // linears are released: Linear::weight becomes the int8 weight, so the model can no
  // longer be saved or quantized again. Returns the linears switched.
  std::size_t execute_int8();

 private:
  CausalLM& model_;  // the model quantized, which outlives this object (its hook is attached)
  QuantRecipe recipe_;
  std::map<int, at::Tensor> value_scales_;  // layer -> o_proj smoothing scale per value channel
  std::int64_t head_dim_ = 0;
  std::uint64_t float_value_basis_ = 0;  // the model's value basis before the folding
  KVCache prefix_;
  std::shared_ptr<QuantizationHook> hook_;
  HookHandle handle_;
};

}  // namespace cushioncache
