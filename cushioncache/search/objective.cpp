#include "cushioncache/search/objective.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"

namespace cushioncache {

nlohmann::json to_json(const ObjectiveOptions& o) {
  nlohmann::json sites = nlohmann::json::array();
  for (Site s : o.sites) sites.push_back(site_name(s));
  return {{"kind", o.kind == ObjectiveKind::kQuantError ? "quant_error" : "max_abs"}, {"spec", o.spec.to_string()}, {"sites", sites}};
}

ObjectiveHook::ObjectiveHook(ObjectiveOptions options, bool keep_graph)
    : options_(std::move(options)), keep_graph_(keep_graph), quantizer_(options_.spec, "objective") {
  if (options_.kind == ObjectiveKind::kQuantError && !options_.spec.enabled())
    throw_error(ErrorKind::kInvalidConfig, "the quantization-error objective needs an enabled spec, not 'off'");
  if (options_.kind == ObjectiveKind::kQuantError && options_.spec.mode == RangeMode::kStatic)
    throw_error(ErrorKind::kInvalidConfig, "the objective's ranges come from each row's own text tokens: use a dynamic spec");
}

at::Tensor ObjectiveHook::on_activation(const SiteContext& ctx, const at::Tensor& x) {
  if (std::find(options_.sites.begin(), options_.sites.end(), ctx.site) == options_.sites.end() || x.dim() != 3) return x;
  const at::Tensor input = keep_graph_ ? x : x.detach();
  const at::Tensor mask = ctx.all_text ? at::Tensor() : ctx.text_mask;
  at::Tensor term;  // [B]
  if (options_.kind == ObjectiveKind::kQuantError) {
    at::Tensor diff = input.to(at::kFloat) - quantizer_.quantize(input, mask).to(at::kFloat);  // prefix/padding rows: exactly 0
    term = diff.pow(2).sum(at::IntArrayRef{1, 2});
  } else {
    at::Tensor a = input.abs().to(at::kFloat);
    if (mask.defined()) a = a.masked_fill(mask.logical_not().unsqueeze(-1), 0.0);
    term = a.amax(at::IntArrayRef{1, 2});
  }
  if (!keep_graph_) term = term.to(at::kDouble);
  terms_ = terms_.defined() ? terms_ + term : term;
  return x;
}

at::Tensor ObjectiveHook::take() {
  at::Tensor out = terms_;
  terms_ = at::Tensor();
  return out;
}

}  // namespace cushioncache
