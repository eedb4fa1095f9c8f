// Test inputs that need no test framework (the fuzz seed generator uses them too):
// temporary folders and random LLaMA-family checkpoints in the real Hugging Face layout.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "cushioncache/model/config.h"
#include "cushioncache/model/loader.h"

namespace cushioncache::testing {

// A fresh folder under the system temp folder, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// A small LLaMA-family config: GQA (4 query heads, 2 KV heads), 2 layers.
ModelConfig tiny_llama_config(bool tied);

// A small model of another family with that family's features switched on: "opt",
// "opt-350m" (post-norm, project_in/out), "bloom" (6 heads), "gpt2"; tied embeddings.
ModelConfig tiny_family_config(const std::string& model_type);

// Random weights for `config` under Hugging Face names (float32, deterministic in seed).
HfWeights random_weights(const ModelConfig& config, std::uint64_t seed);

// config.json as the family's released checkpoints spell it (our own JSON, not
// to_hf_config, so that parsing is checked against an independent writer).
nlohmann::json hf_config_json(const ModelConfig& config);

// Writes config.json (hf_config_json) and
// model.safetensors, or shards with model.safetensors.index.json when shards > 1.
void write_hf_folder(const std::filesystem::path& folder, const HfWeights& weights, int shards = 1);

}  // namespace cushioncache::testing
