#include "cushioncache/quant/quantize_model.h"

#include <optional>
#include <set>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>

#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"
#include "cushioncache/kernels/int8_gemm.h"
#include "cushioncache/quant/int8_linear.h"
#include "cushioncache/quant/smoothquant.h"

namespace cushioncache {

// Routes each site's activations to its quantizer: observing during calibration,
// quantizing afterwards. Per-head activations ([B, H, T, D] or [B, H, T, S]) are shown to
// the quantizer as [B, T, channels], like every other site.
class QuantizationHook : public ActivationHook {
 public:
  std::map<SiteKey, std::unique_ptr<Quantizer>> quantizers;
  std::set<SiteKey> kernel_sites;  // quantized inside the INT8 kernels that read them
  bool calibrating = false;

  at::Tensor on_activation(const SiteContext& ctx, const at::Tensor& x) override {
    auto it = quantizers.find({ctx.layer, ctx.site});
    if (it == quantizers.end()) return x;
    if (!calibrating && kernel_sites.count({ctx.layer, ctx.site}) > 0) return x;
    const bool per_head = x.dim() == 4;
    at::Tensor canonical = per_head ? x.transpose(1, 2).reshape({x.size(0), x.size(2), -1}) : x;
    const at::Tensor mask = ctx.all_text ? at::Tensor() : ctx.text_mask;
    if (calibrating) {
      it->second->observe(canonical.detach(), mask);
      return x;
    }
    at::Tensor out = it->second->quantize(canonical, mask);
    return per_head ? out.reshape({x.size(0), x.size(2), x.size(1), x.size(3)}).transpose(1, 2) : out;
  }
};

QuantizedModel::QuantizedModel(CausalLM& model, QuantRecipe recipe, const CalibrationSet* calibration, const KVCache* float_prefix,
                               const std::map<std::string, at::Tensor>* ranges)
    : model_(model), recipe_(std::move(recipe)), head_dim_(model.config().head_dim), hook_(std::make_shared<QuantizationHook>()) {
  recipe_.validate();
  const bool calibrates = recipe_.smoothquant.has_value() ||
                          (ranges == nullptr && recipe_.activations.enabled() && recipe_.activations.mode == RangeMode::kStatic);
  if (calibrates && (calibration == nullptr || calibration->sequences.empty()))
    throw_error(ErrorKind::kInvalidArgument, "recipe '{}' needs calibration data (static ranges or SmoothQuant)", recipe_.name);
  c10::NoGradGuard no_grad;

  if (recipe_.smoothquant) {
    const auto absmax = collect_channel_absmax(model, *calibration, float_prefix, recipe_.smoothquant->sites);
    float_value_basis_ = model.value_basis();
    const auto scales = apply_smoothquant(model, absmax, recipe_.smoothquant->alpha);
    for (const auto& [key, s] : scales)
      if (key.second == Site::kOProjInput) {
        // Per value channel: o_proj's input channel h * D + d maps to value row (h / G) * D + d,
        // and channels sharing a row share the scale, so every G-th head block holds it.
        const std::int64_t G = model.config().num_heads / model.config().num_kv_heads;
        value_scales_[key.first] = s.view({model.config().num_kv_heads, G, head_dim_}).select(1, 0).reshape({-1});
      }
    log::info("{}: SmoothQuant (alpha {}, sites {}) folded into {} of {} layer sites", recipe_.name, recipe_.smoothquant->alpha,
              recipe_.smoothquant->sites_name(), scales.size(), absmax.size());
  }
  if (float_prefix != nullptr && !float_prefix->empty()) prefix_ = adapt_prefix(*float_prefix);
  const KVCache* prefix = this->prefix();

  auto quantize_weights = [&] {
    if (!recipe_.weights.enabled()) return;
    for (const LinearRef& ref : model.linears()) {
      auto q = make_quantizer(recipe_.quantizer, recipe_.weights, ref.name + ".weight");
      ref.linear->weight = q->quantize(ref.linear->weight, at::Tensor());
    }
  };
  // SmoothQuant's reference observes static ranges on the (smoothed) float model; the
  // other order is a recipe choice (calibration.weights: quantized).
  const bool observe_float_weights = recipe_.calibration.weights == CalibrationWeights::kFloat;
  if (!observe_float_weights) quantize_weights();

  if (recipe_.activations.enabled()) {
    std::vector<Site> sites = {Site::kAttnInput, Site::kOProjInput, Site::kMlpInput, Site::kDownProjInput};
    if (recipe_.attention_matmuls) sites.insert(sites.end(), {Site::kQuery, Site::kKey, Site::kValue, Site::kAttnProbs});
    else if (recipe_.kv_cache) sites.insert(sites.end(), {Site::kKey, Site::kValue});
    for (int l = 0; l < model.config().num_layers; ++l)
      for (Site s : sites)
        hook_->quantizers.emplace(SiteKey{l, s},
                                  make_quantizer(recipe_.quantizer, recipe_.activations, fmt::format("layers.{}.{}", l, site_name(s))));
  }
  handle_ = model.add_hook(hook_);

  bool needs_ranges = false;
  for (const auto& [key, q] : hook_->quantizers) needs_ranges |= q->needs_calibration();
  if (needs_ranges && ranges != nullptr) {
    set_ranges(*ranges);
  } else if (needs_ranges) {
    hook_->calibrating = true;
    try {
      run_calibration(model, *calibration, prefix, 8, recipe_.name + " calibration");
    } catch (...) {
      hook_->calibrating = false;
      throw;
    }
    hook_->calibrating = false;
    for (auto& [key, q] : hook_->quantizers) q->freeze();
  }
  if (observe_float_weights) quantize_weights();
}

QuantizedModel::~QuantizedModel() = default;

KVCache QuantizedModel::adapt_prefix(const KVCache& float_prefix) const {
  if (value_scales_.empty()) return float_prefix;
  if (float_prefix.value_basis != float_value_basis_)
    throw_error(ErrorKind::kMismatch, "adapt_prefix takes a prefix computed by the model before SmoothQuant folded its scales; this one "
                "is in another basis (adapted already?)");
  KVCache out = float_prefix;
  out.value_basis = model_.value_basis();
  for (const auto& [layer, s] : value_scales_) {
    LayerKV& kv = out.layers.at(static_cast<std::size_t>(layer));
    // value: [B, kv_heads, P, D]; the scale is per (kv head, d).
    const at::Tensor scale = s.to(kv.value.device(), at::kFloat).view({1, kv.value.size(1), 1, head_dim_});
    kv.value = (kv.value.to(at::kFloat) / scale).to(kv.value.scalar_type());
  }
  return out;
}

std::size_t QuantizedModel::activation_quantizer_count() const { return hook_->quantizers.size(); }

const Quantizer* QuantizedModel::activation_quantizer(int layer, Site site) const {
  auto it = hook_->quantizers.find({layer, site});
  return it == hook_->quantizers.end() ? nullptr : it->second.get();
}

Quantizer* QuantizedModel::activation_quantizer(int layer, Site site) {
  auto it = hook_->quantizers.find({layer, site});
  return it == hook_->quantizers.end() ? nullptr : it->second.get();
}

std::map<std::string, at::Tensor> QuantizedModel::ranges() const {
  std::map<std::string, at::Tensor> out;
  for (const auto& [key, q] : hook_->quantizers)
    for (const auto& [name, t] : q->state()) out[q->name() + "." + name] = t;
  return out;
}

std::size_t QuantizedModel::execute_int8() {
  CausalLM& model = model_;
  if (const std::string why = int8_execution_blocker(recipe_.weights, recipe_.activations, recipe_.quantizer); !why.empty())
    throw_error(ErrorKind::kUnsupported, "recipe '{}' cannot run on the INT8 kernels: {}", recipe_.name, why);
  if (model.device().is_cpu() && !kernels::cpu_int8_gemm_available())
    throw_error(ErrorKind::kUnsupported, "INT8 execution needs oneDNN (libdnnl-dev); this build was configured without it");
  // The kernels hold their int8 weights where the float ones were; a streamed block's are
  // in host memory, so its layers would run on the CPU kernels with GPU inputs.
  if (!model.device().is_cpu() && model.streams_blocks())
    throw_error(ErrorKind::kUnsupported, "INT8 execution with block streaming runs on the CPU only; load the model without block streaming "
                                         "or use fake quantization on {}", model.device().str());
  std::size_t switched = 0;
  for (const LinearRef& ref : model.linears()) {
    const auto it = hook_->quantizers.find({ref.layer, ref.input_site});
    if (it == hook_->quantizers.end()) continue;
    std::optional<QuantParams> static_input;
    if (recipe_.activations.mode == RangeMode::kStatic) {
      const auto state = it->second->state();
      if (!state.count("min") || !state.count("max"))
        throw_error(ErrorKind::kInvalidArgument, "{}: no calibrated range for INT8 execution", it->second->name());
      static_input = params_for_range(state.at("min"), state.at("max"), recipe_.activations);
    }
    auto kernel = std::make_shared<Int8LinearKernel>(ref.linear->weight, ref.linear->bias, recipe_.weights, recipe_.activations,
                                                     static_input);
    // The float weight is released: the layer now holds its int8 weight (a quarter of
    // float32's bytes), which named_weights() reports and save_hf_model refuses to write.
    ref.linear->weight = kernel->int8_weight();
    ref.linear->kernel = std::move(kernel);
    hook_->kernel_sites.insert(it->first);
    ++switched;
  }
  log::info("{}: {} linear layers run on the INT8 kernels", recipe_.name, switched);
  return switched;
}

void QuantizedModel::set_ranges(const std::map<std::string, at::Tensor>& ranges) {
  std::size_t used = 0;
  for (auto& [key, q] : hook_->quantizers) {
    std::map<std::string, at::Tensor> state;
    const std::string prefix = q->name() + ".";
    for (const auto& [name, t] : ranges)
      if (name.rfind(prefix, 0) == 0) state[name.substr(prefix.size())] = t;
    if (q->needs_calibration() && state.empty())
      throw_error(ErrorKind::kMismatch, "recipe '{}': no saved range for {}", recipe_.name, q->name());
    used += state.size();
    q->load_state(state);
  }
  if (used != ranges.size())
    throw_error(ErrorKind::kMismatch, "recipe '{}': {} saved ranges belong to no quantizer of this model", recipe_.name, ranges.size() - used);
}

}  // namespace cushioncache
