// Building prefix artifacts, one library call per way of making them: the searched
// CushionCache prefix, its quantization-aware tuning, and the baselines; plus the static
// ranges an artifact carries for a recipe, calibrated with its prefix in place. The CLI's
// search / tune / baseline commands and the run pipeline all go through these.
#pragma once

#include <string>

#include "cushioncache/artifact/artifact.h"
#include "cushioncache/distributed/run_context.h"
#include "cushioncache/pipeline/quantized_eval.h"
#include "cushioncache/quant/recipe.h"
#include "cushioncache/search/baselines.h"
#include "cushioncache/search/prefix_searcher.h"
#include "cushioncache/tune/prefix_tuner.h"

namespace cushioncache {

// Runs (or, with context.resume, resumes) the search on the float model; the artifact
// holds the searched tokens and their KV, and the search record in info["search"].
Artifact search_prefix_artifact(CausalLM& float_model, const Tokenizer& tokenizer, const SearchOptions& options,
                                const RunContext& context = {}, SearchResult* result = nullptr);

// "bos" or "prefixquant" (built on the float model in seconds).
Artifact baseline_artifact(CausalLM& float_model, const Tokenizer& tokenizer, const std::string& kind,
                           const PrefixQuantOptions& prefixquant = {});

// Static ranges of `recipe` calibrated behind the artifact's prefix, stored in it with
// the recipe in info["recipe"] (a fresh model from `load`; no-op for recipes without them).
void calibrate_artifact_ranges(const ModelFactory& load, const Tokenizer& tokenizer, Artifact& artifact, const QuantRecipe& recipe);

// Tunes the artifact's prefix against the model quantized by `recipe` (ranges calibrated
// with the starting prefix, kept constant), then recalibrates the ranges with the tuned
// prefix. The result is kind "cushioncache" with info["tuning"]. The context's state
// file is the tuning checkpoint.
Artifact tune_prefix_artifact(const ModelFactory& load, const Tokenizer& tokenizer, const Artifact& start, const QuantRecipe& recipe,
                              const TuningOptions& options, const RunContext& context = {}, TuningResult* result = nullptr);

}  // namespace cushioncache
