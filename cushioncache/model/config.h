// The architecture of a decoder-only causal LM, read from a Hugging Face config.json
// (LLaMA-2/3, Mistral, Qwen2) or derived from a llama2.c header, and validated so that a
// bad field fails here, by name, rather than as a shape error deep in a forward pass.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/ScalarType.h>
#include <nlohmann/json_fwd.hpp>

namespace cushioncache {

enum class RopeScalingType { kNone, kLinear, kLlama3 };

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;
  // LLaMA-3.1 style frequency-dependent scaling.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  std::int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string model_type = "llama";  // llama | mistral | qwen2
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_layers = 0;
  std::int64_t num_heads = 0;
  std::int64_t num_kv_heads = 0;
  std::int64_t head_dim = 0;
  std::int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // biases on q/k/v (and o for LLaMA's attention_bias)
  bool o_proj_bias = false;
  bool mlp_bias = false;
  std::optional<std::int64_t> sliding_window;  // Mistral: keys further back than this are masked
  std::optional<std::int64_t> bos_token_id;
  std::vector<std::int64_t> eos_token_ids;
  c10::ScalarType checkpoint_dtype = c10::ScalarType::Float;  // torch_dtype / dtype

  // Throws kInvalidConfig naming the first inconsistent field.
  void validate() const;
};

// From a parsed config.json; errors name the field (callers add the file as context).
ModelConfig parse_hf_config(const nlohmann::json& json);
ModelConfig read_hf_config(const std::filesystem::path& config_json);
// The config.json transformers would write for this architecture.
nlohmann::json to_hf_config(const ModelConfig& config);

}  // namespace cushioncache
