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
#include "cushioncache/tokenizer/text_windows.h"
#include "cushioncache/tune/prefix_tuner.h"

namespace cushioncache {

// exec: how the quantized evaluation rows run.
enum class Execution {
  kFake,  // "fake": fake quantization in float
  kInt8,  // "int8": the linears on the INT8 kernels
};

// search.seed_prefix: what the search starts from.
enum class SearchSeed {
  kBos,     // "bos": the tokenizer's BOS
  kNone,    // "none": nothing
  kTokens,  // a list of token ids (in SearchOptions::seed_prefix)
};

// calibration.include_bos: whether the BOS that starts each calibration window counts.
enum class CalibrationBos {
  kRecipe,      // "recipe": what each recipe says
  kCounted,     // "true": counted, overriding every recipe
  kNotCounted,  // "false": not counted, overriding every recipe
  kBoth,        // "both": the no-prefix quantized row twice, counted and not (behind a prefix there is none)
};

struct RunConfig {
  std::string name;
  std::string model, tokenizer;  // "$data/..." is the shared data folder
  std::string device = "cpu", dtype = "auto";
  std::string quant = "w8a8-per-tensor-static";  // the recipe the prefixes are judged under
  Execution exec = Execution::kFake;
  // also_quant: more recipes every prefix is evaluated under (the paper's Table 1 has a
  // column per recipe); the prefixes are still searched and tuned under `quant`.
  std::vector<std::string> also_quant;
  std::optional<PlantedSinkOptions> planted_sink;
  EvaluationPlan eval;
  std::vector<std::string> baselines = {"bos", "prefixquant"};
  PrefixQuantOptions prefixquant;
  SearchOptions search;
  SearchSeed search_seed = SearchSeed::kBos;
  // search.candidates: {frequent: N, ...} restricts the search to a subset chosen with the
  // tokenizer at run time (a list of ids goes to search.candidates directly).
  std::optional<FrequentCandidates> frequent_candidates;
  bool tuning_enabled = true;
  TuningOptions tuning;
  TextWindows inspect{"wikitext2", 4, 256, 0};  // the before/after plots' text
  CalibrationBos calibration_include_bos = CalibrationBos::kRecipe;
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

// One setting from elsewhere, e.g. a command-line flag: `value` read as YAML (as an
// override is) and checked by the same field, errors naming `source` ("--tau: 'search.tau'
// must be in (0, 1], got 0"). The checks across fields are the caller's.
void set_run_config_value(RunConfig& config, const std::string& key, const std::string& value, const std::string& source);
// A setting's value in `config`, as config.resolved.json writes it (null for a setting of
// an optional section that `config` does not have).
nlohmann::json run_config_value(const RunConfig& config, const std::string& key);

}  // namespace cushioncache
