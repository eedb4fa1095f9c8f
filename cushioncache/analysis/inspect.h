// The `inspect` report: activation statistics of a model on sampled text windows, with
// and without a cached prefix, written as stats.json, one CSV per table and SVG plots a
// reader understands without the JSON.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "cushioncache/analysis/activation_stats.h"
#include "cushioncache/model/causal_lm.h"
#include "cushioncache/tokenizer/text_windows.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache {

struct InspectOptions {
  TextWindows windows{"wikitext2", 8, 512, 0};
  std::int64_t first_keys = 4;
  int token_layer = -1;            // layer of the token-wise plot; -1 = the last
  std::string prefix_label = "with prefix";
};

struct Inspection {
  ActivationReport without_prefix;
  std::optional<ActivationReport> with_prefix;
  int token_layer = 0;
  std::string prefix_label;
  std::string data_description;
};

// Without a prefix the windows start with the tokenizer's BOS (as ordinary inputs do);
// with one, the same text follows the prefix without a second BOS.
Inspection inspect_model(CausalLM& model, const Tokenizer& tokenizer, const InspectOptions& options, const KVCache* prefix);

// stats.json, sites.csv, attention.csv, attention_heads.csv, token_max.csv,
// magnitudes.svg, token_max.svg, attention_sinks.svg, attention_heads.svg in `folder`
// (created); every file written atomically.
void write_inspection(const Inspection& inspection, const nlohmann::json& model_description, const std::filesystem::path& folder);

}  // namespace cushioncache
