// The settings of `cushioncache run`: one table of fields (key, meaning, example, check)
// from which the YAML file is read, command-line overrides are applied, settings are
// validated (one check, one message, whichever way a value came) and the resolved config
// is written back. A key is the field's dotted YAML path ("search.tau"); the same key
// names it in an override ("search.tau=0.3").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cushioncache/analysis/planted_sink.h"
#include "cushioncache/eval/evaluate.h"
#include "cushioncache/search/baselines.h"
#include "cushioncache/search/candidates.h"
#include "cushioncache/search/prefix_searcher.h"
#include "cushioncache/tune/prefix_tuner.h"

namespace cushioncache {

struct RunConfig {
  std::string name;
  std::string model, tokenizer;  // "$data/..." is the shared data folder
  std::string device = "cpu", dtype = "auto";
  std::string quant = "w8a8-per-tensor-static";  // the recipe the prefixes are judged under
  std::string exec = "fake";  // "int8": quantized evaluation rows run on the INT8 kernels
  // also_quant: more recipes every prefix is evaluated under (the paper's Table 1 has a
  // column per recipe); the prefixes are still searched and tuned under `quant`.
  std::vector<std::string> also_quant;
  std::optional<PlantedSinkOptions> planted_sink;
  EvaluationPlan eval;
  std::vector<std::string> baselines = {"bos", "prefixquant"};
  PrefixQuantOptions prefixquant;
  SearchOptions search;
  std::string search_seed = "bos";  // "bos", "none", or "tokens" (the ids in search.seed_prefix)
  // search.candidates: {frequent: N, ...} restricts the search to a subset chosen with the
  // tokenizer at run time (a list of ids goes to search.candidates directly).
  std::optional<FrequentCandidates> frequent_candidates;
  bool tuning_enabled = true;
  TuningOptions tuning;
  std::int64_t inspect_samples = 4, inspect_seq_len = 256;
  std::string inspect_data = "wikitext2";
  // calibration.include_bos: "recipe" (what the recipe says), "true", "false" (override
  // the recipe everywhere), or "both": the no-prefix quantized row twice, with the BOS of
  // the calibration windows counted and not counted (behind a prefix there is none).
  std::string calibration_include_bos = "recipe";
  // calibration.samples / seq_len: override the recipe's calibration size everywhere.
  std::optional<std::int64_t> calibration_samples, calibration_seq_len;
};

// Strict: unknown keys, wrong types and bad values name the file and line (or the
// override) and the key. `overrides` are "key=value" pairs applied after the file, each
// value read as YAML ("0.3", "[1, 2]", "{frequent: 64}"), through the same checks.
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides = {});
nlohmann::json to_json(const RunConfig& config);

// The settable fields, in the table's order: key, what it means, a valid example (as YAML),
// and a value out of its range (empty when every value of its type is valid).
struct RunConfigSetting {
  std::string key, help, example, out_of_range;
};
std::vector<RunConfigSetting> run_config_settings();

}  // namespace cushioncache
