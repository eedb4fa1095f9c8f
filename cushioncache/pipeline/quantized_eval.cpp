#include "cushioncache/pipeline/quantized_eval.h"

#include <cmath>
#include <map>

#include <fmt/format.h>

#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"
#include "cushioncache/model/identity.h"
#include "cushioncache/quant/calibration.h"
#include "cushioncache/quant/quantize_model.h"
#include "cushioncache/quant/recipe.h"

namespace cushioncache {

std::vector<VariantResult> evaluate_variants(const ModelFactory& load_model, const Tokenizer& tokenizer, const VariantPlan& plan,
                                             const std::string& model_path) {
  if (plan.variants.empty()) throw_error(ErrorKind::kInvalidArgument, "no variant to evaluate");
  // Recipes are checked before anything runs: a typo fails in a second, not after an hour.
  std::vector<std::optional<QuantRecipe>> recipes;
  for (const auto& v : plan.variants) recipes.push_back(v == "float" ? std::nullopt : std::optional<QuantRecipe>(load_recipe(v)));

  std::vector<VariantResult> results;
  const KVCache* float_prefix_ptr = plan.prefix != nullptr ? &plan.prefix->prefix : nullptr;
  const std::string prefix_recipe = plan.prefix != nullptr ? plan.prefix->info.value("recipe", nlohmann::json::object()).value("name", "") : "";
  std::map<std::string, CalibrationSet> calibrations;  // shared by recipes with the same settings
  for (std::size_t i = 0; i < plan.variants.size(); ++i) {
    auto model = load_model();
    VariantResult result;
    result.label = plan.variants[i];
    EvaluationPlan evaluation = plan.evaluation;
    evaluation.prefix_description = plan.prefix_description;
    std::unique_ptr<QuantizedModel> quantized;
    if (recipes[i]) {
      const QuantRecipe& recipe = *recipes[i];
      result.label = recipe.name;
      result.recipe = to_json(recipe);
      const CalibrationSet* calibration = nullptr;
      // Ranges calibrated with this prefix for this recipe come with the artifact.
      const std::map<std::string, at::Tensor>* ranges =
          plan.prefix != nullptr && !plan.prefix->ranges.empty() && prefix_recipe == recipe.name ? &plan.prefix->ranges : nullptr;
      const bool calibrates = recipe.smoothquant.has_value() ||
                              (ranges == nullptr && recipe.activations.enabled() && recipe.activations.mode == RangeMode::kStatic);
      if (calibrates) {
        const BosPolicy bos = float_prefix_ptr != nullptr ? BosPolicy::kNo : BosPolicy::kAuto;
        const std::string key = to_json(recipe)["calibration"].dump();
        auto it = calibrations.find(key);
        if (it == calibrations.end()) {
          const std::int64_t room = model->config().max_position_embeddings - (float_prefix_ptr ? float_prefix_ptr->length() : 0);
          it = calibrations.emplace(key, build_calibration_set(tokenizer, recipe.calibration, room, bos)).first;
        }
        calibration = &it->second;
        result.calibration = calibration->description;
      }
      log::debug("variant {}: {}", recipe.name, result.recipe.dump());
      if (ranges != nullptr) log::info("variant {}: static ranges from the prefix artifact", recipe.name);
      if (ranges != nullptr) result.calibration += (result.calibration.empty() ? "" : "; ") + std::string("static ranges from the prefix artifact");
      quantized = std::make_unique<QuantizedModel>(*model, recipe, calibration, float_prefix_ptr, ranges);
      if (plan.int8_execution) {
        quantized->execute_int8(*model);
        result.execution = "int8";
        result.label += " [int8]";
      }
      evaluation.prefix = quantized->prefix();
    } else {
      evaluation.prefix = float_prefix_ptr;
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
  model.erase("fingerprint");  // the weights differ per variant; each run's own is below
  for (std::size_t i = 0; i < results.size(); ++i) runs[i]["fingerprint"] = results[i].report.model.value("fingerprint", "");
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
