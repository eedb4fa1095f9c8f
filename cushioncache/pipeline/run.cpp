#include "cushioncache/pipeline/run.h"

#include <chrono>
#include <functional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/analysis/inspect.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/files.h"
#include "cushioncache/core/log.h"
#include "cushioncache/core/tensor_options.h"
#include "cushioncache/model/identity.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/pipeline/prefix_artifacts.h"
#include "cushioncache/pipeline/quantized_eval.h"
#include "cushioncache/pipeline/run_report.h"
#include "cushioncache/quant/recipe.h"
#include "cushioncache/tokenizer/text_windows.h"

namespace cushioncache {
namespace fs = std::filesystem;

void run_pipeline(const RunConfig& config, const fs::path& out, bool resume) {
  fs::create_directories(out / "artifacts");
  const auto started = std::chrono::steady_clock::now();
  RunRecord record;  // what the report says
  auto phase = [&](const std::string& name, const std::function<void()>& fn) {
    log::info("== {} ==", name);
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    record.phases.emplace_back(name, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  };
  const std::string resolved = to_json(config).dump(2) + "\n";
  write_file_atomically(out / "config.resolved.json", [&](std::ostream& o) { o << resolved; });

  LoadOptions load_options;
  load_options.device = parse_device(config.device);
  if (config.dtype != "auto") load_options.dtype = parse_float_dtype(config.dtype);
  const ModelFactory load = [&] {
    auto model = load_model(config.model, load_options);
    if (config.planted_sink) model->add_hook(std::make_shared<PlantedSinkHook>(*config.planted_sink)).release();
    return model;
  };
  std::string tokenizer_path = config.tokenizer;
  if (tokenizer_path.empty()) {
    auto found = default_tokenizer_path(config.model);
    if (!found) throw_error(ErrorKind::kNotFound, "no tokenizer beside {}; set 'tokenizer' in the config", config.model);
    tokenizer_path = found->string();
  }
  const auto tokenizer = load_tokenizer(tokenizer_path);
  // "true"/"false" override the recipe everywhere; "recipe" and "both" keep its own value
  // for every row but the extra no-prefix one.
  std::optional<bool> include_bos;
  if (config.calibration_include_bos == CalibrationBos::kCounted) include_bos = true;
  if (config.calibration_include_bos == CalibrationBos::kNotCounted) include_bos = false;
  QuantRecipe recipe = load_recipe(config.quant);
  if (include_bos) recipe.calibration.include_bos = *include_bos;
  if (config.calibration_samples) recipe.calibration.windows.samples = *config.calibration_samples;
  if (config.calibration_seq_len) recipe.calibration.windows.seq_len = *config.calibration_seq_len;
  SearchOptions search_options = config.search;
  if (config.search_seed == SearchSeed::kBos) search_options.seed_prefix = bos_prefix_tokens(*tokenizer);
  if (config.search_seed == SearchSeed::kNone) search_options.seed_prefix.clear();
  if (config.frequent_candidates) {
    search_options.candidates = frequent_token_candidates(*tokenizer, *config.frequent_candidates);
    log::info("search candidates: the {} most frequent tokens of {} + delimiters = {} tokens", config.frequent_candidates->count,
              config.frequent_candidates->text.data, search_options.candidates.size());
  }
  {
    // Settings that do not fit this model fail now, not after an hour of evaluation.
    auto model = load();
    (void)resolve_search_options(search_options, *model, *tokenizer);
    if (config.tuning_enabled) {
      check_tuning_options(config.tuning);
      // The training text too: a missing corpus, or one shorter than a window, fails now.
      TextWindows one = config.tuning.windows;
      one.samples = 1;
      (void)sample_text_windows(*tokenizer, one, room_after_prefix(model->config().max_position_embeddings, search_options.max_length),
                                BosPolicy::kNo);
    }
  }
  auto evaluate_rows = [&](const std::string& setting, const std::vector<std::string>& variants, const Artifact* prefix,
                           std::optional<bool> bos_counted) {
    VariantPlan plan;
    plan.variants = variants;
    plan.int8_execution = config.exec == Execution::kInt8;
    plan.calibration_include_bos = bos_counted;
    plan.calibration_samples = config.calibration_samples;
    plan.calibration_seq_len = config.calibration_seq_len;
    plan.evaluation = config.eval;
    plan.prefix = prefix;
    const std::string prefix_label = prefix == nullptr ? "—" : fmt::format("{} ({} token{})", prefix->kind, prefix->tokens.size(), prefix->tokens.size() == 1 ? "" : "s");
    for (auto& r : evaluate_variants(load, *tokenizer, plan, config.model)) record.rows.push_back({setting, prefix_label, std::move(r)});
  };
  // The recipe the prefixes are judged under, then the other columns of the table.
  std::vector<std::string> quantized = {config.quant};
  quantized.insert(quantized.end(), config.also_quant.begin(), config.also_quant.end());
  auto with_float = [&] {
    std::vector<std::string> v = {"float"};
    v.insert(v.end(), quantized.begin(), quantized.end());
    return v;
  };

  phase("float and quantized without a prefix", [&] {
    if (config.calibration_include_bos != CalibrationBos::kBoth) {
      evaluate_rows("no prefix", with_float(), nullptr, include_bos);
      return;
    }
    // The no-prefix baseline calibrated on the same token set as the prefixed rows (BOS
    // not counted) and on all of its windows (BOS counted): on a model whose first token
    // carries massive activations, this decides whether it collapses.
    evaluate_rows("no prefix", {"float"}, nullptr, std::nullopt);
    evaluate_rows("no prefix, BOS counted", quantized, nullptr, true);
    evaluate_rows("no prefix, BOS not counted", quantized, nullptr, false);
  });

  std::map<std::string, Artifact>& artifacts = record.prefixes;
  for (const auto& kind : config.baselines) {
    phase("baseline " + kind, [&] {
      auto model = load();
      Artifact a = baseline_artifact(*model, *tokenizer, kind, config.prefixquant);
      calibrate_artifact_ranges(load, *tokenizer, a, recipe);
      save_artifact(a, out / "artifacts" / (kind + ".safetensors"));
      evaluate_rows("baseline " + kind, quantized, &a, include_bos);
      artifacts.emplace(kind, std::move(a));
    });
  }

  phase("prefix search", [&] {
    auto model = load();
    RunContext context;
    context.state_file = (out / "search-state.json").string();
    context.resume = resume;
    Artifact a = search_prefix_artifact(*model, *tokenizer, search_options, context, &record.search);
    calibrate_artifact_ranges(load, *tokenizer, a, recipe);
    save_artifact(a, out / "artifacts" / "searched.safetensors");
    evaluate_rows("searched prefix", quantized, &a, include_bos);
    artifacts.emplace("searched", std::move(a));
  });

  const Artifact* final_prefix = &artifacts.at("searched");
  if (config.tuning_enabled) {
    phase("quantization-aware tuning", [&] {
      RunContext context;
      context.state_file = (out / "tune-checkpoint.safetensors").string();
      context.resume = resume;
      TuningResult tuning;
      Artifact tuned = tune_prefix_artifact(load, *tokenizer, artifacts.at("searched"), recipe, config.tuning, context, &tuning);
      record.tuning = std::move(tuning);
      save_artifact(tuned, out / "artifacts" / "cushioncache.safetensors");
      artifacts.emplace("cushioncache", std::move(tuned));
    });
    final_prefix = &artifacts.at("cushioncache");
  } else {
    save_artifact(*final_prefix, out / "artifacts" / "cushioncache.safetensors");
  }
  phase("evaluation with the CushionCache prefix", [&] { evaluate_rows("CushionCache", with_float(), final_prefix, include_bos); });

  phase("inspect before / after", [&] {
    auto model = load();
    InspectOptions options;
    options.windows = config.inspect;
    options.prefix_label = "CushionCache prefix";
    record.inspection = inspect_model(*model, *tokenizer, options, &final_prefix->prefix);
    write_inspection(record.inspection, describe_model(*model, config.model), out / "inspect");
  });
  record.total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  write_run_report(config, recipe, *tokenizer, record, out);
}

}  // namespace cushioncache
