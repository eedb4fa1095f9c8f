// The prefix search's objective, per batch row: the quantization error of the paper (the
// squared error of min-max fake quantization of the chosen sites' activations, the range
// of each row computed on its text tokens only) or the largest |activation|. Both are
// sums of non-negative per-block terms, which is what makes pruning between blocks exact.
#pragma once

#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include "cushioncache/model/causal_lm.h"
#include "cushioncache/quant/quantizer.h"
#include "cushioncache/quant/spec.h"

namespace cushioncache {

enum class ObjectiveKind { kQuantError, kMaxAbs };

struct ObjectiveOptions {
  ObjectiveKind kind = ObjectiveKind::kQuantError;
  // Min-max per row (the range of each sequence's text tokens), asymmetric 8-bit.
  QuantSpec spec = parse_quant_spec("a8-per-tensor-dynamic-asym", QuantRole::kActivation);
  std::vector<Site> sites = {Site::kBlockInput};  // the residual stream, the paper's default reading
};

nlohmann::json to_json(const ObjectiveOptions& options);

// Accumulates the objective's terms per batch row while blocks run. take() returns and
// clears what the sites seen since the last take() contributed: [B] float64, or a
// differentiable [B] tensor in the model's graph when keep_graph is set (the tuner).
class ObjectiveHook : public ActivationHook {
 public:
  ObjectiveHook(ObjectiveOptions options, bool keep_graph = false);
  at::Tensor on_activation(const SiteContext& ctx, const at::Tensor& x) override;
  at::Tensor take();

 private:
  ObjectiveOptions options_;
  bool keep_graph_;
  UniformQuantizer quantizer_;
  at::Tensor terms_;
};

}  // namespace cushioncache
