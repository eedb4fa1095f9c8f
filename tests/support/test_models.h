// Test inputs that need no test framework (the fuzz seed generator uses them too):
// temporary folders and random LLaMA-family checkpoints in the real Hugging Face layout.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

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

// Random weights for `config` under Hugging Face names (float32, deterministic in seed).
HfWeights random_weights(const ModelConfig& config, std::uint64_t seed);

// Writes config.json (as transformers would, via our own JSON, not to_hf_config) and
// model.safetensors, or shards with model.safetensors.index.json when shards > 1.
void write_hf_folder(const std::filesystem::path& folder, const HfWeights& weights, int shards = 1);

}  // namespace cushioncache::testing
