#include "cushioncache/pipeline/prefix_artifacts.h"

#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"
#include "cushioncache/quant/calibration.h"
#include "cushioncache/quant/quantize_model.h"

namespace cushioncache {
namespace {

// Artifacts hold no wall times, so the same settings and seed write the same bytes
// (timings live in the state files and the run report).
nlohmann::json without_wall_times(nlohmann::json j) {
  if (j.is_object()) {
    j.erase("seconds");
    for (auto& [key, value] : j.items()) value = without_wall_times(value);
  } else if (j.is_array()) {
    for (auto& value : j) value = without_wall_times(value);
  }
  return j;
}

}  // namespace

Artifact search_prefix_artifact(CausalLM& float_model, const Tokenizer& tokenizer, const SearchOptions& options,
                                const RunContext& context, SearchResult* result) {
  PrefixSearcher searcher(float_model, tokenizer, options, context);
  const SearchResult r = searcher.run();
  if (r.prefix.empty()) throw_error(ErrorKind::kInvalidArgument, "the search accepted no token and had no seed prefix: no prefix to save");
  Artifact a = make_token_artifact(float_model, "cushioncache", r.prefix);
  a.info["search"] = {{"options", to_json(options)}, {"result", without_wall_times(to_json(r))}};
  if (result != nullptr) *result = r;
  return a;
}

Artifact baseline_artifact(CausalLM& float_model, const Tokenizer& tokenizer, const std::string& kind, const PrefixQuantOptions& prefixquant) {
  if (kind == "bos") return make_token_artifact(float_model, "bos", bos_prefix_tokens(tokenizer));
  if (kind == "prefixquant") {
    const PrefixQuantResult r = prefixquant_prefix(float_model, tokenizer, prefixquant);
    Artifact a = make_token_artifact(float_model, "prefixquant", r.tokens);
    nlohmann::json counts = nlohmann::json::array();
    for (const auto& [token, n] : r.counts) counts.push_back({token, n});
    a.info["prefixquant"] = {{"options", to_json(prefixquant)}, {"outlier_tokens_per_sequence", r.outlier_tokens_per_sequence}, {"counts", counts}};
    return a;
  }
  throw_error(ErrorKind::kInvalidArgument, "baseline '{}' is not bos or prefixquant", kind);
}

void calibrate_artifact_ranges(const ModelFactory& load, const Tokenizer& tokenizer, Artifact& artifact, const QuantRecipe& recipe) {
  artifact.ranges.clear();
  artifact.info["recipe"] = to_json(recipe);
  if (!(recipe.activations.enabled() && recipe.activations.mode == RangeMode::kStatic) && !recipe.smoothquant) return;
  auto model = load();
  const std::int64_t room = room_after_prefix(model->config().max_position_embeddings, artifact.prefix.length());
  const CalibrationSet calibration = build_calibration_set(tokenizer, recipe.calibration, room, BosPolicy::kNo);
  QuantizedModel quantized(*model, recipe, &calibration, &artifact.prefix);
  artifact.ranges = quantized.ranges();
  artifact.info["calibration"] = calibration.description;
}

Artifact tune_prefix_artifact(const ModelFactory& load, const Tokenizer& tokenizer, const Artifact& start, const QuantRecipe& recipe,
                              const TuningOptions& options, const RunContext& context, TuningResult* result) {
  if (recipe.smoothquant)
    throw_error(ErrorKind::kUnsupported, "tuning behind a SmoothQuant recipe ('{}'): the tuned values would be in the smoothed basis; "
                "tune with the recipe without smoothquant", recipe.name);
  auto model = load();
  Artifact bound = start;
  bind_artifact(bound, *model, "the prefix to tune");
  const std::int64_t room = room_after_prefix(model->config().max_position_embeddings, bound.prefix.length());
  const CalibrationSet calibration = build_calibration_set(tokenizer, recipe.calibration, room, BosPolicy::kNo);
  QuantizedModel quantized(*model, recipe, &calibration, &bound.prefix);
  QuantAwarePrefixTuner tuner(*model, tokenizer, options, context);
  const TuningResult r = tuner.tune(*quantized.prefix());
  log::info("tuning: loss {:.5f} -> {:.5f} over {} steps ({:.1f} s)", r.loss_before, r.loss_after, r.log.size(), r.seconds);

  Artifact tuned;
  tuned.kind = "cushioncache";
  tuned.tokens = start.tokens;
  tuned.identity = start.identity;
  tuned.info = start.info;
  tuned.prefix = r.prefix;
  tuned.prefix.tokens = bound.prefix.tokens;
  for (auto& layer : tuned.prefix.layers) {  // stored like a computed prefix: the model's dtype
    layer.key = layer.key.to(model->dtype());
    layer.value = layer.value.to(model->dtype());
  }
  nlohmann::json log = nlohmann::json::array();
  for (const auto& e : r.log) log.push_back({e.step, e.loss, e.cross_entropy, e.quant_error, e.grad_norm});
  tuned.info["tuning"] = {{"options", to_json(options)}, {"recipe", recipe.name},  {"loss_before", r.loss_before},
                          {"loss_after", r.loss_after},  {"log_columns", {"step", "loss", "cross_entropy", "quant_error", "grad_norm"}},
                          {"log", log}};
  calibrate_artifact_ranges(load, tokenizer, tuned, recipe);
  if (result != nullptr) *result = r;
  return tuned;
}

}  // namespace cushioncache
