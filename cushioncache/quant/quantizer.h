// Quantizers: objects that fake-quantize one stream of tensors (the activations at one
// site of one layer, or one weight matrix), with calibration state for static ranges,
// and the registry through which users add their own without editing the library.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "cushioncache/quant/fake_quant.h"
#include "cushioncache/quant/spec.h"

namespace cushioncache {

class Quantizer {
 public:
  Quantizer(QuantSpec spec, std::string name) : spec_(std::move(spec)), name_(std::move(name)) {}
  virtual ~Quantizer() = default;

  const QuantSpec& spec() const { return spec_; }
  const std::string& name() const { return name_; }  // e.g. "layers.3.down_proj_input", "model.layers.3.mlp.down_proj.weight"

  // Activations: x is [B, T, C] and text_mask [B, T] bool (undefined = every token). Tokens
  // outside the mask (prefix, padding) are neither counted in ranges nor quantized: the
  // prefix stays in full precision. Weights: x is [out, in] and text_mask undefined.
  virtual at::Tensor quantize(const at::Tensor& x, const at::Tensor& text_mask) = 0;

  // Static calibration: observe() sees calibration activations, freeze() fixes the range.
  virtual void observe(const at::Tensor& x, const at::Tensor& text_mask);
  virtual void freeze() {}
  virtual bool needs_calibration() const { return false; }

  // Calibrated state (e.g. {"min", "max"}) for saving; load_state() restores and freezes.
  virtual std::map<std::string, at::Tensor> state() const { return {}; }
  virtual void load_state(const std::map<std::string, at::Tensor>& state);

 private:
  QuantSpec spec_;
  std::string name_;
};

// The built-in quantizer: uniform affine min-max quantization at any granularity, dynamic
// or static (min-max, EMA or percentile ranges). Subclasses may change how a range
// becomes parameters by overriding make_params (examples/custom_quantizer.cpp).
class UniformQuantizer : public Quantizer {
 public:
  UniformQuantizer(QuantSpec spec, std::string name);

  at::Tensor quantize(const at::Tensor& x, const at::Tensor& text_mask) override;
  void observe(const at::Tensor& x, const at::Tensor& text_mask) override;
  void freeze() override;
  bool needs_calibration() const override;
  std::map<std::string, at::Tensor> state() const override;
  void load_state(const std::map<std::string, at::Tensor>& state) override;

 protected:
  // [min, max] -> scale and zero-point (default: params_for_range).
  virtual QuantParams make_params(const at::Tensor& min, const at::Tensor& max) const;

 private:
  // The per-granularity range of x (activations: [B, T, C]); shapes broadcast against
  // the view quantize() works on.
  std::pair<at::Tensor, at::Tensor> dynamic_range(const at::Tensor& x, const at::Tensor& text_mask) const;
  std::pair<at::Tensor, at::Tensor> batch_range(const at::Tensor& x, const at::Tensor& text_mask) const;
  at::Tensor grouped(const at::Tensor& x) const;  // [..., C] -> [..., C / G, G] for per-group

  at::Tensor min_, max_;         // static range, accumulated by observe()
  std::int64_t batches_ = 0;
  bool frozen_ = false;
  QuantParams frozen_params_;
};

using QuantizerFactory = std::function<std::unique_ptr<Quantizer>(const QuantSpec& spec, const std::string& name)>;

// Adds (or replaces) a quantizer kind selectable by name from recipes and the CLI.
void register_quantizer(const std::string& kind, QuantizerFactory factory);
// kInvalidConfig listing the registered kinds if `kind` is unknown.
std::unique_ptr<Quantizer> make_quantizer(const std::string& kind, const QuantSpec& spec, const std::string& name);
std::vector<std::string> quantizer_kinds();

}  // namespace cushioncache
