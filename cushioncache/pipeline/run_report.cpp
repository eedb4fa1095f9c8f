#include "cushioncache/pipeline/run_report.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/files.h"
#include "cushioncache/core/log.h"

namespace cushioncache {

namespace {

std::string row_label(const RunRow& r) { return r.setting + ", " + r.result.label; }

// The paper's Table-1 layout: a line per prefix, a column per variant (float first), the
// first corpus's perplexity in each cell; a variant a prefix was not evaluated under is "—".
std::string table1(const std::vector<RunRow>& rows) {
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
      auto it = std::find_if(rows.begin(), rows.end(), [&](const RunRow& r) { return r.setting == setting && r.result.label == v; });
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

std::string md_table(const std::vector<RunRow>& rows) {
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

void write_run_report(const RunConfig& config, const QuantRecipe& recipe, const Tokenizer& tokenizer, const RunRecord& record,
                      const std::filesystem::path& out) {
  const double total = record.total_seconds;
  const auto& rows = record.rows;
  const auto& artifacts = record.prefixes;
  const SearchResult& search = record.search;
  const bool tuned = record.tuning.has_value();
  const Inspection& inspection = record.inspection;
  // results.json: everything the report says, machine-readable.
  nlohmann::json results = {{"config", to_json(config)}, {"phases", nlohmann::json::array()}, {"rows", nlohmann::json::array()},
                            {"prefixes", nlohmann::json::object()}, {"search", to_json(search)}};
  for (const auto& [name, seconds] : record.phases) results["phases"].push_back({{"phase", name}, {"seconds", seconds}});
  for (const auto& r : rows) {
    nlohmann::json run = to_json(std::vector<VariantResult>{r.result})["runs"][0];
    run["setting"] = row_label(r);
    run["prefix"] = r.prefix;
    results["rows"].push_back(run);
  }
  for (const auto& [name, a] : artifacts) results["prefixes"][name] = {{"kind", a.kind}, {"tokens", a.tokens}, {"text", tokenizer.decode(a.tokens, false)}};
  if (tuned)
    results["tuning"] = {{"loss_before", record.tuning->loss_before}, {"loss_after", record.tuning->loss_after},
                         {"steps", record.tuning->log.size()}, {"seconds", record.tuning->seconds}};
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
  if (config.calibration_include_bos == CalibrationBos::kBoth)
    md += "\nThe no-prefix quantized row is evaluated twice (`calibration.include_bos: both`): with the BOS that starts every "
          "calibration window counted toward the static ranges, and not counted (as behind a prefix, whose windows hold no BOS).\n";
  md += "\n";
  md += "## Prefixes\n\n| prefix | tokens (id \"piece\") |\n|---|---|\n";
  for (const auto& [name, a] : artifacts) md += fmt::format("| {} | {} |\n", name, describe_tokens(tokenizer, a.tokens));
  md += "\n## Search\n\n| step | best token | L(prefix + t) / L(prefix) | accepted | candidates | blocks run | time (s) |\n|---:|---|---:|---|---:|---:|---:|\n";
  for (const auto& s : search.steps)
    md += fmt::format("| {} | {} | {} | {} | {} | {:.1f}% | {:.1f} |\n", s.step,
                      s.best_token >= 0 ? describe_tokens(tokenizer, {s.best_token}) : "none (all pruned)",
                      s.best_token >= 0 ? fmt::format("{:.4f}", s.best_score / s.prefix_score) : fmt::format("> {}", config.search.tau),
                      s.accepted ? "yes" : "no", s.candidates,
                      100.0 * static_cast<double>(s.blocks_evaluated) / static_cast<double>(s.blocks_exhaustive), s.seconds);
  md += fmt::format("\nStopped: {}.\n", search.stop_reason);
  if (tuned)
    md += fmt::format("\n## Tuning\n\nLoss (cross-entropy + {} x quantization error, quantized model, training windows): {:.5f} -> {:.5f} in {} steps ({:.1f} s).\n",
                      config.tuning.lambda, record.tuning->loss_before, record.tuning->loss_after, record.tuning->log.size(),
                      record.tuning->seconds);
  md += fmt::format(
      "\n## Activations at the input of the last block\n\n| | top-1 | top-10% | median |\n|---|---:|---:|---:|\n| no prefix | {:.4g} | {:.4g} | {:.4g} |\n| CushionCache prefix | {:.4g} | {:.4g} | {:.4g} |\n\n",
      before.top1, before.top10pct, before.median, after.top1, after.top10pct, after.median);
  md += "![magnitudes](inspect/magnitudes.svg)\n\n![token-wise maxima](inspect/token_max.svg)\n\n![attention sinks](inspect/attention_sinks.svg)\n\n"
        "![attention on key 0 per layer and head](inspect/attention_heads.svg)\n";
  md += "\n## Time per phase\n\n| phase | seconds |\n|---|---:|\n";
  for (const auto& [name, seconds] : record.phases) md += fmt::format("| {} | {:.1f} |\n", name, seconds);
  md += "\nFiles: `results.json`, `config.resolved.json`, `artifacts/*.safetensors` (use with `--prefix`), `inspect/`.\n";
  write_file_atomically(out / "report.md", [&](std::ostream& o) { o << md; });
  log::info("wrote {}", (out / "report.md").string());
}

}  // namespace cushioncache
