// A synthetic attention-sink mechanism, for studying the method on a model that grew no
// outliers of its own (stories260K: largest residual value about 14). Planted as a hook,
// keyed to tokens: at the down-projection input of every layer from `from_layer` on,
// hidden channel `channel` is set to `value` at
//   - the first position of a sequence (nothing cached before it), like the first-token
//     massive activation of LLaMA-class models, and
//   - every trigger token (e.g. ".") that no sink token (e.g. "\n") precedes, in the
//     cached prefix or earlier in the input, like the first-delimiter one.
// A prefix that contains the sink token therefore takes the outliers off the text after
// it, which is what the prefix search should discover. value = 1000 is about 10^4 times
// the median |x| there, the ratio LLaMA-2-7B shows.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cushioncache/model/sites.h"

namespace cushioncache {

struct PlantedSinkOptions {
  std::int64_t sink_token = 0;
  std::vector<std::int64_t> trigger_tokens;
  int from_layer = 1;
  std::int64_t channel = 17;
  double value = 1000.0;
};

nlohmann::json to_json(const PlantedSinkOptions& options);

class PlantedSinkHook : public ActivationHook {
 public:
  explicit PlantedSinkHook(PlantedSinkOptions options);
  at::Tensor on_activation(const SiteContext& ctx, const at::Tensor& x) override;

 private:
  PlantedSinkOptions options_;
};

}  // namespace cushioncache
