// The main job, `cushioncache run --config FILE`: float evaluation -> the chosen recipe
// without a prefix -> baseline prefixes -> prefix search -> quantization-aware tuning ->
// ranges recalibrated with the prefix -> evaluation -> report.md, results.json, the
// inspect plots before/after and the resolved config, all in one output folder. The
// search and the tuning resume (--resume) from their state files in that folder.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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
  std::string search_seed = "bos";  // "bos", "none", or token ids in search.seed_prefix
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

// Strict: unknown keys, wrong types and bad values name the file, line and key.
RunConfig load_run_config(const std::string& path);
nlohmann::json to_json(const RunConfig& config);

void run_pipeline(const RunConfig& config, const std::filesystem::path& out, bool resume);

}  // namespace cushioncache
