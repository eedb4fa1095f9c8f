// The CushionCache artifact: everything needed to run a model behind its prefix, in one
// safetensors file: the prefix tokens, every layer's K and V (searched, or tuned), the
// static activation ranges calibrated WITH the prefix in place, and metadata (the model's
// identity, the recipe, the search and tuning settings, scores). Loading checks the
// identity and refuses a different model. Baseline prefixes (BOS only, PrefixQuant-style)
// are artifacts of the same kind, so every comparison is one flag.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "cushioncache/model/causal_lm.h"

namespace cushioncache {

// What a prefix belongs to: the architecture, a hash of its config, and a fingerprint of
// the float weights (before any quantization or smoothing).
struct ModelIdentity {
  std::string model_type;
  std::string config_hash;
  std::string fingerprint;
  bool operator==(const ModelIdentity& o) const {
    return model_type == o.model_type && config_hash == o.config_hash && fingerprint == o.fingerprint;
  }
};
ModelIdentity identify(CausalLM& float_model);

struct Artifact {
  std::string kind;                  // "cushioncache", "bos", "prefixquant", "text"
  std::vector<std::int64_t> tokens;  // the prefix tokens
  KVCache prefix;                    // batch 1, computed by (or tuned for) the float model
  std::map<std::string, at::Tensor> ranges;  // static ranges with the prefix in place ("<site>.min")
  ModelIdentity identity;
  nlohmann::json info = nlohmann::json::object();  // recipe, search, tuning, scores, ...
};

// An artifact of the prefix's own KV, computed by the float model.
Artifact make_token_artifact(CausalLM& float_model, std::string kind, const std::vector<std::int64_t>& tokens);

// Atomic (a temporary file, then a rename).
void save_artifact(const Artifact& artifact, const std::filesystem::path& path);

// Reads and checks the file; with a model, also binds it to the model (below).
Artifact load_artifact(const std::filesystem::path& path);
Artifact load_artifact(const std::filesystem::path& path, CausalLM& float_model);

// Checks that `artifact` belongs to `float_model` (kMismatch naming both models and
// `source`, e.g. the file) and moves its KV to the model's device and dtype.
void bind_artifact(Artifact& artifact, CausalLM& float_model, const std::string& source);

}  // namespace cushioncache
