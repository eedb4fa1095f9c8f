#include "cushioncache/pipeline/quantized_eval.h"

#include <cmath>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"
#include "cushioncache/model/identity.h"
#include "cushioncache/quant/calibration.h"
#include "cushioncache/quant/quantize_model.h"
#include "cushioncache/quant/recipe.h"

namespace cushioncache {

VariantQuantizer::VariantQuantizer(const Tokenizer& tokenizer, const Artifact* prefix, bool int8_execution)
    : tokenizer_(tokenizer), prefix_(prefix), int8_execution_(int8_execution) {}

VariantQuantizer::Applied VariantQuantizer::apply(CausalLM& model, const QuantRecipe& recipe) {
  Applied applied;
  const KVCache* float_prefix = prefix_ != nullptr ? &prefix_->prefix : nullptr;
  const nlohmann::json prefix_recipe = prefix_ != nullptr ? prefix_->info.value("recipe", nlohmann::json::object()) : nlohmann::json::object();
  // Ranges calibrated with this prefix for this recipe come with the artifact. A recipe of
  // the same name defined otherwise (other sites, calibration settings or observation
  // order, e.g. an artifact from before a preset's definition changed) calibrates afresh.
  const bool same_name = prefix_ != nullptr && !prefix_->ranges.empty() && prefix_recipe.value("name", "") == recipe.name;
  const bool same_definition = same_name && prefix_recipe == to_json(recipe);
  if (same_name && !same_definition)
    log::info("{}: the prefix artifact's static ranges were calibrated for another definition of this recipe ({}); calibrating afresh",
              recipe.name, prefix_recipe.dump());
  const std::map<std::string, at::Tensor>* ranges = same_definition ? &prefix_->ranges : nullptr;
  const bool calibrates =
      recipe.smoothquant.has_value() || (ranges == nullptr && recipe.activations.enabled() && recipe.activations.mode == RangeMode::kStatic);
  const CalibrationSet* calibration = nullptr;
  if (calibrates) {
    const BosPolicy bos = float_prefix != nullptr ? BosPolicy::kNo : BosPolicy::kAuto;
    // The windows and what counts in them; not the observation order, which uses the same set.
    const CalibrationOptions& c = recipe.calibration;
    const std::string key = fmt::format("{}|{}", to_json(c.windows).dump(), c.include_bos);
    auto it = calibrations_.find(key);
    if (it == calibrations_.end()) {
      const std::int64_t room =
          room_after_prefix(model.config().max_position_embeddings, float_prefix != nullptr ? float_prefix->length() : 0);
      it = calibrations_.emplace(key, build_calibration_set(tokenizer_, recipe.calibration, room, bos)).first;
    }
    calibration = &it->second;
    applied.calibration = calibration->description;
  }
  if (ranges != nullptr) {
    log::info("{}: static ranges from the prefix artifact", recipe.name);
    applied.calibration += (applied.calibration.empty() ? "" : "; ") + std::string("static ranges from the prefix artifact");
  }
  applied.quantized = std::make_unique<QuantizedModel>(model, recipe, calibration, float_prefix, ranges);
  if (int8_execution_) applied.quantized->execute_int8();
  return applied;
}

std::vector<VariantResult> evaluate_variants(const ModelFactory& load_model, const Tokenizer& tokenizer, const VariantPlan& plan,
                                             const std::string& model_path) {
  if (plan.variants.empty()) throw_error(ErrorKind::kInvalidArgument, "no variant to evaluate");
  // Recipes are checked before anything runs: a typo fails in a second, not after an hour.
  std::vector<std::optional<QuantRecipe>> recipes;
  for (const auto& v : plan.variants) {
    if (v == "float") {
      recipes.emplace_back();
      continue;
    }
    QuantRecipe recipe = load_recipe(v);
    if (plan.calibration_include_bos) recipe.calibration.include_bos = *plan.calibration_include_bos;
    if (plan.calibration_samples) recipe.calibration.windows.samples = *plan.calibration_samples;
    if (plan.calibration_seq_len) recipe.calibration.windows.seq_len = *plan.calibration_seq_len;
    recipes.emplace_back(std::move(recipe));
  }

  std::vector<VariantResult> results;
  VariantQuantizer quantizer(tokenizer, plan.prefix, plan.int8_execution);
  for (std::size_t i = 0; i < plan.variants.size(); ++i) {
    auto model = load_model();
    VariantResult result;
    result.label = plan.variants[i];
    EvaluationPlan evaluation = plan.evaluation;
    evaluation.prefix_description = plan.prefix_description;
    VariantQuantizer::Applied applied;
    if (recipes[i]) {
      const QuantRecipe& recipe = *recipes[i];
      result.label = recipe.name;
      result.recipe = to_json(recipe);
      log::debug("variant {}: {}", recipe.name, result.recipe.dump());
      applied = quantizer.apply(*model, recipe);
      result.calibration = applied.calibration;
      if (plan.int8_execution) {
        result.execution = "int8";
        result.label += " [int8]";
      }
      evaluation.prefix = applied.quantized->prefix();
    } else {
      evaluation.prefix = plan.prefix != nullptr ? &plan.prefix->prefix : nullptr;
    }
    result.report = evaluate(*model, tokenizer, evaluation, describe_model(*model, model_path));
    results.push_back(std::move(result));
  }
  return results;
}

nlohmann::json to_json(const std::vector<VariantResult>& results) {
  nlohmann::json runs = nlohmann::json::array();
  for (const auto& r : results) {
    nlohmann::json run = to_json(r.report);
    run.erase("model");
    run["variant"] = r.label;
    run["recipe"] = r.recipe;
    if (!r.calibration.empty()) run["calibration"] = r.calibration;
    if (!r.recipe.is_null()) run["execution"] = r.execution;
    runs.push_back(run);
  }
  nlohmann::json model = results.empty() ? nlohmann::json() : results.front().report.model;
  // The weights differ per variant (INT8 execution holds int8 linears); each run's own are below.
  model.erase("fingerprint");
  model.erase("weight_bytes");
  for (std::size_t i = 0; i < results.size(); ++i) {
    runs[i]["fingerprint"] = results[i].report.model.value("fingerprint", "");
    runs[i]["weight_bytes"] = results[i].report.model.value("weight_bytes", std::int64_t{0});
  }
  return {{"model", model}, {"runs", runs}};
}

std::string format_variants_table(const std::vector<VariantResult>& results) {
  // One float run keeps the plain table; a quantized one says what it is first.
  if (results.size() == 1) {
    const VariantResult& only = results.front();
    if (only.label == "float") return format_table(only.report);
    return fmt::format("{}{}\n{}", only.label, only.calibration.empty() ? "" : " (" + only.calibration + ")",
                       format_table(only.report));
  }
  auto number = [](double v) { return std::abs(v) < 1e6 ? fmt::format("{:.3f}", v) : fmt::format("{:.3e}", v); };
  std::string header = fmt::format("{:<32}", "variant");
  const EvalReport& first = results.front().report;
  for (const auto& c : first.perplexity) header += fmt::format(" {:>12}", c.corpus + " ppl");
  for (const auto& t : first.tasks) {
    const auto& m = t.metrics.size() > 1 && t.metrics[1].name == "acc_norm" ? t.metrics[1] : t.metrics[0];
    header += fmt::format(" {:>16}", t.task + " " + m.name);
  }
  std::string out = header + "\n";
  for (const auto& r : results) {
    std::string row = fmt::format("{:<32}", r.label);
    for (const auto& c : r.report.perplexity) row += fmt::format(" {:>12}", number(c.result.perplexity));
    for (const auto& t : r.report.tasks) {
      const auto& m = t.metrics.size() > 1 && t.metrics[1].name == "acc_norm" ? t.metrics[1] : t.metrics[0];
      row += fmt::format(" {:>16}", number(m.value));
    }
    out += row + "\n";
  }
  return out;
}

}  // namespace cushioncache
