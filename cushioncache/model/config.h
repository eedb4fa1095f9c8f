// The architecture of a decoder-only causal LM, read from a Hugging Face config.json
// (LLaMA-2/3, Mistral, Qwen2, OPT, BLOOM, GPT-2) or derived from a llama2.c header, and
// validated so that a bad field fails here, by name, rather than as a shape error deep in
// a forward pass. One struct for every family: the fields a family does not use keep
// their defaults; model/family.h says which family reads which config.json keys.
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

// How a family tells the attention where a token is.
enum class PositionKind {
  kRotary,   // RoPE on queries and keys (LLaMA family)
  kLearned,  // a learned table added to the embeddings (OPT, GPT-2)
  kAlibi,    // per-head linear biases on the scores, by key position (BLOOM)
};

struct ModelConfig {
  std::string model_type = "llama";  // llama | mistral | qwen2 | opt | bloom | gpt2
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_layers = 0;
  std::int64_t num_heads = 0;
  std::int64_t num_kv_heads = 0;
  std::int64_t head_dim = 0;
  std::int64_t max_position_embeddings = 2048;
  double norm_eps = 1e-6;           // rms_norm_eps / layer_norm_eps / layer_norm_epsilon
  std::string hidden_act = "silu";  // silu (gated) | relu | gelu | gelu_new
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

  // OPT: do_layer_norm_before = false (opt-350m) normalises after each residual add;
  // word_embed_proj_dim below hidden_size puts project_in/out around the blocks
  // (0 = hidden_size); _remove_final_layer_norm drops the decoder's final norm.
  bool norm_before = true;
  std::int64_t word_embed_proj_dim = 0;
  bool final_norm = true;
  // GPT-2: scale_attn_by_inverse_layer_idx divides layer l's scores by l + 1 as well.
  bool scale_attn_by_inverse_layer_idx = false;
  // BLOOM: apply_residual_connection_post_layernorm takes the residual after the norm.
  bool residual_from_norm = false;

  PositionKind positions() const;
  std::int64_t embedding_dim() const { return word_embed_proj_dim > 0 ? word_embed_proj_dim : hidden_size; }

  // Throws kInvalidConfig naming the first inconsistent field.
  void validate() const;
};

// From a parsed config.json (the family's own keys: n_embd for GPT-2, ffn_dim for OPT,
// ...); errors name the field (callers add the file as context).
ModelConfig parse_hf_config(const nlohmann::json& json);
ModelConfig read_hf_config(const std::filesystem::path& config_json);
// The config.json transformers would write for this architecture.
nlohmann::json to_hf_config(const ModelConfig& config);

}  // namespace cushioncache
