#include "cushioncache/analysis/planted_sink.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"

namespace cushioncache {

nlohmann::json to_json(const PlantedSinkOptions& o) {
  return {{"sink_token", o.sink_token}, {"trigger_tokens", o.trigger_tokens}, {"from_layer", o.from_layer}, {"channel", o.channel},
          {"value", o.value}};
}

PlantedSinkHook::PlantedSinkHook(PlantedSinkOptions options) : options_(std::move(options)) {
  if (options_.trigger_tokens.empty()) throw_error(ErrorKind::kInvalidConfig, "planted sink: no trigger tokens");
}

at::Tensor PlantedSinkHook::on_activation(const SiteContext& ctx, const at::Tensor& x) {
  if (ctx.site != Site::kDownProjInput || ctx.layer < options_.from_layer) return x;
  if (!ctx.input_ids.defined()) throw_error(ErrorKind::kInternal, "planted sink: the forward pass gave no input ids");
  if (options_.channel >= x.size(-1))
    throw_error(ErrorKind::kInvalidConfig, "planted sink: channel {} is beyond the {} channels of down_proj's input", options_.channel, x.size(-1));
  const at::Tensor& ids = ctx.input_ids;  // [B, T]
  const auto B = ids.size(0), T = ids.size(1);
  // Has a sink token come before position t (in the past or the input up to t)?
  at::Tensor sink_here = ids.eq(options_.sink_token).to(at::kLong);
  at::Tensor sink_before = (sink_here.cumsum(1) - sink_here).gt(0);
  at::Tensor past_has_sink = at::zeros({B, 1}, ids.options().dtype(at::kBool));
  if (ctx.past_tokens.defined()) past_has_sink = ctx.past_tokens.eq(options_.sink_token).any(1, /*keepdim=*/true).expand({B, 1});
  at::Tensor trigger = at::zeros_like(ids, ids.options().dtype(at::kBool));
  for (auto t : options_.trigger_tokens) trigger = trigger | ids.eq(t);
  at::Tensor spike = trigger & (sink_before | past_has_sink).logical_not();
  // The first position of a sequence with nothing cached before it.
  if (ctx.past_length == 0) {
    at::Tensor first = at::zeros({B, T}, spike.options());
    first.select(1, 0).fill_(true);
    spike = spike | first;
  }
  at::Tensor out = x.clone();
  at::Tensor column = out.select(-1, options_.channel);
  column.masked_fill_(spike, options_.value);
  return out;
}

}  // namespace cushioncache
