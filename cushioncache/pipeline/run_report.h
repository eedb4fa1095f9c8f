// The report of a `run`: report.md (the paper's Table-1 layout, every figure, where the
// recipe departs from the paper, the prefixes, the search steps, the tuning loss, the
// activations before/after with the inspect plots, the time per phase) and results.json
// (the same, machine-readable), from what the job recorded.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cushioncache/analysis/inspect.h"
#include "cushioncache/artifact/artifact.h"
#include "cushioncache/pipeline/quantized_eval.h"
#include "cushioncache/pipeline/run_config.h"
#include "cushioncache/quant/recipe.h"
#include "cushioncache/search/prefix_searcher.h"
#include "cushioncache/tune/prefix_tuner.h"

namespace cushioncache {

struct RunRow {
  std::string setting;  // what the prefix is: "no prefix", "baseline bos", "searched prefix", ...
  std::string prefix;   // the prefix's kind and length, "—" without one
  VariantResult result;
};

struct RunRecord {
  std::vector<RunRow> rows;
  std::map<std::string, Artifact> prefixes;  // by name: the baselines, "searched", "cushioncache"
  SearchResult search;
  std::optional<TuningResult> tuning;        // when the run tuned
  Inspection inspection;                     // without and with the final prefix
  std::vector<std::pair<std::string, double>> phases;  // seconds per phase
  double total_seconds = 0;
};

// Writes results.json and report.md into `out` (atomically).
void write_run_report(const RunConfig& config, const QuantRecipe& recipe, const Tokenizer& tokenizer, const RunRecord& record,
                      const std::filesystem::path& out);

}  // namespace cushioncache
