#include "cushioncache/pipeline/run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/analysis/inspect.h"
#include "cushioncache/core/data_dir.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/files.h"
#include "cushioncache/core/log.h"
#include "cushioncache/core/memory_usage.h"
#include "cushioncache/core/tensor_options.h"
#include "cushioncache/kernels/int8_gemm.h"
#include "cushioncache/model/identity.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/pipeline/prefix_artifacts.h"
#include "cushioncache/pipeline/quantized_eval.h"
#include "cushioncache/quant/int8_linear.h"
#include "cushioncache/quant/recipe.h"

namespace cushioncache {
namespace fs = std::filesystem;

namespace {

struct Row {
  std::string setting, prefix;  // setting: what the prefix is ("no prefix", "baseline bos", ...)
  VariantResult result;
};

std::string row_label(const Row& r) { return r.setting + ", " + r.result.label; }

// The paper's Table-1 layout: a line per prefix, a column per variant (float first), the
// first corpus's perplexity in each cell; a variant a prefix was not evaluated under is "—".
std::string table1(const std::vector<Row>& rows) {
  if (rows.empty() || rows.front().result.report.perplexity.empty()) return "";
  std::vector<std::string> settings, variants;
  auto add_once = [](std::vector<std::string>& v, const std::string& s) {
    if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
  };
  for (const auto& r : rows) add_once(settings, r.setting), add_once(variants, r.result.label);
  const std::string corpus = rows.front().result.report.perplexity.front().corpus;
  std::string out = "| prefix |", rule = "|---|";
  for (const auto& v : variants) out += " " + v + " |", rule += "---:|";
  out += "\n" + rule + "\n";
  for (const auto& setting : settings) {
    std::string line = "| " + setting + " |";
    for (const auto& v : variants) {
      auto it = std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.setting == setting && r.result.label == v; });
      if (it == rows.end() || it->result.report.perplexity.empty()) {
        line += " — |";
        continue;
      }
      const double ppl = it->result.report.perplexity.front().result.perplexity;
      line += std::abs(ppl) < 1e6 ? fmt::format(" {:.3f} |", ppl) : fmt::format(" {:.3e} |", ppl);
    }
    out += line + "\n";
  }
  return fmt::format("{} perplexity, a line per prefix and a column per variant (the paper's Table-1 layout):\n\n{}", corpus, out);
}

std::string md_table(const std::vector<Row>& rows) {
  if (rows.empty()) return "";
  const EvalReport& first = rows.front().result.report;
  std::string header = "| setting | prefix |", rule = "|---|---|";
  for (const auto& c : first.perplexity) header += " " + c.corpus + " PPL |", rule += "---:|";
  for (const auto& t : first.tasks) {
    const auto& m = t.metrics.size() > 1 && t.metrics[1].name == "acc_norm" ? t.metrics[1] : t.metrics[0];
    header += " " + t.task + " " + m.name + " |", rule += "---:|";
  }
  std::string out = header + "\n" + rule + "\n";
  for (const auto& r : rows) {
    std::string line = "| " + row_label(r) + " | " + r.prefix + " |";
    for (const auto& c : r.result.report.perplexity)
      line += std::abs(c.result.perplexity) < 1e6 ? fmt::format(" {:.3f} |", c.result.perplexity) : fmt::format(" {:.3e} |", c.result.perplexity);
    for (const auto& t : r.result.report.tasks) {
      const auto& m = t.metrics.size() > 1 && t.metrics[1].name == "acc_norm" ? t.metrics[1] : t.metrics[0];
      line += fmt::format(" {:.4f} |", m.value);
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace

void run_pipeline(const RunConfig& config, const fs::path& out, bool resume) {
  fs::create_directories(out / "artifacts");
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::pair<std::string, double>> phases;
  auto phase = [&](const std::string& name, const std::function<void()>& fn) {
    log::info("== {} ==", name);
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    phases.emplace_back(name, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
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
  if (config.calibration_include_bos == "true" || config.calibration_include_bos == "false")
    include_bos = config.calibration_include_bos == "true";
  QuantRecipe recipe = load_recipe(config.quant);
  if (include_bos) recipe.calibration.include_bos = *include_bos;
  if (config.calibration_samples) recipe.calibration.samples = *config.calibration_samples;
  if (config.calibration_seq_len) recipe.calibration.seq_len = *config.calibration_seq_len;
  SearchOptions search_options = config.search;
  if (config.search_seed == "bos") search_options.seed_prefix = bos_prefix_tokens(*tokenizer);
  if (config.search_seed == "none") search_options.seed_prefix.clear();
  if (config.frequent_candidates) {
    search_options.candidates = frequent_token_candidates(*tokenizer, *config.frequent_candidates);
    log::info("search candidates: the {} most frequent tokens of {} + delimiters = {} tokens", config.frequent_candidates->count,
              config.frequent_candidates->data, search_options.candidates.size());
  }
  search_options.state_file = (out / "search-state.json").string();
  {
    // Settings that do not fit this model fail now, not after an hour of evaluation.
    auto model = load();
    PrefixSearcher check(*model, *tokenizer, search_options);
    if (config.tuning_enabled) QuantAwarePrefixTuner tuning_check(*model, *tokenizer, config.tuning);
  }
  std::vector<Row> rows;
  auto evaluate_rows = [&](const std::string& setting, const std::vector<std::string>& variants, const Artifact* prefix,
                           std::optional<bool> bos_counted) {
    VariantPlan plan;
    plan.variants = variants;
    plan.int8_execution = config.exec == "int8";
    plan.calibration_include_bos = bos_counted;
    plan.calibration_samples = config.calibration_samples;
    plan.calibration_seq_len = config.calibration_seq_len;
    plan.evaluation = config.eval;
    plan.prefix = prefix;
    const std::string prefix_label = prefix == nullptr ? "—" : fmt::format("{} ({} token{})", prefix->kind, prefix->tokens.size(), prefix->tokens.size() == 1 ? "" : "s");
    for (auto& r : evaluate_variants(load, *tokenizer, plan, config.model)) rows.push_back({setting, prefix_label, std::move(r)});
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
    if (config.calibration_include_bos != "both") {
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

  std::map<std::string, Artifact> artifacts;
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

  SearchResult search;
  phase("prefix search", [&] {
    auto model = load();
    Artifact a = search_prefix_artifact(*model, *tokenizer, search_options, resume, &search);
    calibrate_artifact_ranges(load, *tokenizer, a, recipe);
    save_artifact(a, out / "artifacts" / "searched.safetensors");
    evaluate_rows("searched prefix", quantized, &a, include_bos);
    artifacts.emplace("searched", std::move(a));
  });

  TuningResult tuning;
  const Artifact* final_prefix = &artifacts.at("searched");
  if (config.tuning_enabled) {
    phase("quantization-aware tuning", [&] {
      TuningOptions options = config.tuning;
      options.checkpoint_file = (out / "tune-checkpoint.safetensors").string();
      Artifact tuned = tune_prefix_artifact(load, *tokenizer, artifacts.at("searched"), recipe, options, resume, &tuning);
      save_artifact(tuned, out / "artifacts" / "cushioncache.safetensors");
      artifacts.emplace("cushioncache", std::move(tuned));
    });
    final_prefix = &artifacts.at("cushioncache");
  } else {
    save_artifact(*final_prefix, out / "artifacts" / "cushioncache.safetensors");
  }
  phase("evaluation with the CushionCache prefix", [&] { evaluate_rows("CushionCache", with_float(), final_prefix, include_bos); });

  Inspection inspection;
  phase("inspect before / after", [&] {
    auto model = load();
    InspectOptions options;
    options.data = config.inspect_data;
    options.samples = config.inspect_samples;
    options.seq_len = config.inspect_seq_len;
    options.prefix_label = "CushionCache prefix";
    inspection = inspect_model(*model, *tokenizer, options, &final_prefix->prefix);
    write_inspection(inspection, describe_model(*model, config.model), out / "inspect");
  });
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  // results.json: everything the report says, machine-readable.
  nlohmann::json results = {{"config", to_json(config)}, {"phases", nlohmann::json::array()}, {"rows", nlohmann::json::array()},
                            {"prefixes", nlohmann::json::object()}, {"search", to_json(search)}};
  for (const auto& [name, seconds] : phases) results["phases"].push_back({{"phase", name}, {"seconds", seconds}});
  for (const auto& r : rows) {
    nlohmann::json run = to_json(std::vector<VariantResult>{r.result})["runs"][0];
    run["setting"] = row_label(r);
    run["prefix"] = r.prefix;
    results["rows"].push_back(run);
  }
  for (const auto& [name, a] : artifacts) results["prefixes"][name] = {{"kind", a.kind}, {"tokens", a.tokens}, {"text", tokenizer->decode(a.tokens, false)}};
  if (config.tuning_enabled)
    results["tuning"] = {{"loss_before", tuning.loss_before}, {"loss_after", tuning.loss_after}, {"steps", tuning.log.size()}, {"seconds", tuning.seconds}};
  const SiteStats& before = last_block_input(inspection.without_prefix);
  const SiteStats& after = last_block_input(*inspection.with_prefix);
  results["last_block_input"] = {{"without_prefix", {{"top1", before.top1}, {"top10pct", before.top10pct}, {"median", before.median}}},
                                 {"with_prefix", {{"top1", after.top1}, {"top10pct", after.top10pct}, {"median", after.median}}}};
  const std::vector<RecipeDefinition> definitions = recipe_definitions(recipe);
  results["definitions"] = nlohmann::json::array();
  for (const auto& d : definitions)
    results["definitions"].push_back(
        {{"what", d.what}, {"ours", d.ours}, {"paper", d.paper}, {"reference", d.reference}, {"differs_from_paper", d.differs_from_paper}});
  results["total_seconds"] = total;
  const std::string results_text = results.dump(2) + "\n";
  write_file_atomically(out / "results.json", [&](std::ostream& o) { o << results_text; });

  std::string md = fmt::format("# CushionCache run: {}\n\nModel `{}`, recipe `{}`{}. Total time {:.1f} s.\n\n", config.name, config.model,
                               config.quant, config.planted_sink ? ", with the planted sink mechanism (analysis/planted_sink.h)" : "", total);
  md += "## Results\n\n" + table1(rows) + "\nEvery figure:\n\n" + md_table(rows) + "\n";
  // Every report says where its recipe departs from the paper's settings, so that a reader
  // comparing these rows with the paper's table sees each difference.
  md += fmt::format("## Definitions: recipe `{}` vs the paper vs SmoothQuant's reference\n\n", recipe.name);
  md += "| definition | this run | the paper | SmoothQuant's reference |\n|---|---|---|---|\n";
  for (const auto& d : definitions)
    md += fmt::format("| {} | {}{} | {} | {} |\n", d.what, d.ours, d.differs_from_paper ? " **(differs from the paper)**" : "", d.paper,
                      d.reference);
  if (config.calibration_include_bos == "both")
    md += "\nThe no-prefix quantized row is evaluated twice (`calibration.include_bos: both`): with the BOS that starts every "
          "calibration window counted toward the static ranges, and not counted (as behind a prefix, whose windows hold no BOS).\n";
  md += "\n";
  md += "## Prefixes\n\n| prefix | tokens (id \"piece\") |\n|---|---|\n";
  for (const auto& [name, a] : artifacts) md += fmt::format("| {} | {} |\n", name, describe_tokens(*tokenizer, a.tokens));
  md += "\n## Search\n\n| step | best token | L(prefix + t) / L(prefix) | accepted | candidates | blocks run | time (s) |\n|---:|---|---:|---|---:|---:|---:|\n";
  for (const auto& s : search.steps)
    md += fmt::format("| {} | {} | {} | {} | {} | {:.1f}% | {:.1f} |\n", s.step,
                      s.best_token >= 0 ? describe_tokens(*tokenizer, {s.best_token}) : "none (all pruned)",
                      s.best_token >= 0 ? fmt::format("{:.4f}", s.best_score / s.prefix_score) : fmt::format("> {}", config.search.tau),
                      s.accepted ? "yes" : "no", s.candidates,
                      100.0 * static_cast<double>(s.blocks_evaluated) / static_cast<double>(s.blocks_exhaustive), s.seconds);
  md += fmt::format("\nStopped: {}.\n", search.stop_reason);
  if (config.tuning_enabled)
    md += fmt::format("\n## Tuning\n\nLoss (cross-entropy + {} x quantization error, quantized model, training windows): {:.5f} -> {:.5f} in {} steps ({:.1f} s).\n",
                      config.tuning.lambda, tuning.loss_before, tuning.loss_after, tuning.log.size(), tuning.seconds);
  md += fmt::format(
      "\n## Activations at the input of the last block\n\n| | top-1 | top-10% | median |\n|---|---:|---:|---:|\n| no prefix | {:.4g} | {:.4g} | {:.4g} |\n| CushionCache prefix | {:.4g} | {:.4g} | {:.4g} |\n\n",
      before.top1, before.top10pct, before.median, after.top1, after.top10pct, after.median);
  md += "![magnitudes](inspect/magnitudes.svg)\n\n![token-wise maxima](inspect/token_max.svg)\n\n![attention sinks](inspect/attention_sinks.svg)\n\n"
        "![attention on key 0 per layer and head](inspect/attention_heads.svg)\n";
  md += "\n## Time per phase\n\n| phase | seconds |\n|---|---:|\n";
  for (const auto& [name, seconds] : phases) md += fmt::format("| {} | {:.1f} |\n", name, seconds);
  md += "\nFiles: `results.json`, `config.resolved.json`, `artifacts/*.safetensors` (use with `--prefix`), `inspect/`.\n";
  write_file_atomically(out / "report.md", [&](std::ostream& o) { o << md; });
  log::info("wrote {}", (out / "report.md").string());
}

}  // namespace cushioncache
