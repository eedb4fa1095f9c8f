#include "support/test_models.h"

#include <stdlib.h>

#include <cmath>
#include <fstream>
#include <stdexcept>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/io/safetensors.h"
#include "cushioncache/model/family.h"

namespace cushioncache::testing {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "cushioncache-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

ModelConfig tiny_family_config(const std::string& model_type) {
  ModelConfig c;
  c.model_type = model_type;
  c.vocab_size = 97;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 4;
  c.head_dim = 8;
  c.max_position_embeddings = 128;
  c.norm_eps = 1e-5;
  c.tie_word_embeddings = true;
  c.attention_bias = c.o_proj_bias = c.mlp_bias = true;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  if (model_type == "opt") {
    c.hidden_act = "relu";
    c.bos_token_id = 2;
  } else if (model_type == "opt-350m") {
    // opt-350m's shape in miniature: norms after the residual adds, 16-wide embeddings
    // projected in and out of the 32-wide blocks, no final norm.
    c.model_type = "opt";
    c.hidden_act = "relu";
    c.norm_before = false;
    c.final_norm = false;
    c.word_embed_proj_dim = 16;
    c.bos_token_id = 2;
  } else if (model_type == "bloom") {
    c.num_heads = 6;  // not a power of two: ALiBi's second slope sequence
    c.num_kv_heads = 6;
    c.hidden_size = 48;
    c.intermediate_size = 4 * 48;
    c.hidden_act = "gelu_new";
  } else if (model_type == "gpt2") {
    c.intermediate_size = 4 * 32;
    c.hidden_act = "gelu_new";
    c.bos_token_id = 50256 % c.vocab_size;
    c.eos_token_ids = {50256 % c.vocab_size};
  } else {
    throw std::invalid_argument("tiny_family_config: no tiny config for " + model_type);
  }
  c.validate();
  return c;
}

ModelConfig tiny_llama_config(bool tied) {
  ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = 97;
  c.hidden_size = 32;
  c.intermediate_size = 72;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 256;
  c.norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = tied;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

HfWeights random_weights(const ModelConfig& config, std::uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  HfWeights w;
  w.config = config;
  for (const auto& [name, shape] : model_family(config.model_type).expected_weights(config)) {
    at::Tensor t;
    const bool norm = name.find("norm") != std::string::npos || name.find(".ln_") != std::string::npos;
    const bool bias = name.find("bias") != std::string::npos;
    if (norm && !bias) {
      t = 1.0 + 0.1 * at::randn(shape, gen, at::kFloat);  // norm gains near 1
    } else {
      const double fan_in = static_cast<double>(shape.back());
      t = at::randn(shape, gen, at::kFloat) * (bias ? 0.1 : 1.0 / std::sqrt(fan_in));
    }
    w.tensors[name] = t;
  }
  return w;
}

nlohmann::json hf_config_json(const ModelConfig& c) {
  nlohmann::json j;
  if (c.model_type == "opt") {
    // As facebook/opt-125m's config.json spells it.
    j = {{"architectures", {"OPTForCausalLM"}},
         {"model_type", "opt"},
         {"vocab_size", c.vocab_size},
         {"hidden_size", c.hidden_size},
         {"ffn_dim", c.intermediate_size},
         {"num_hidden_layers", c.num_layers},
         {"num_attention_heads", c.num_heads},
         {"max_position_embeddings", c.max_position_embeddings},
         {"activation_function", c.hidden_act},
         {"do_layer_norm_before", c.norm_before},
         {"word_embed_proj_dim", c.embedding_dim()},
         {"enable_bias", true},
         {"layer_norm_elementwise_affine", true},
         {"pad_token_id", 1},
         {"bos_token_id", 2},
         {"eos_token_id", 2},
         {"torch_dtype", "float16"}};
  } else if (c.model_type == "bloom") {
    // As bigscience/bloom-560m's (n_embed is its legacy name for hidden_size).
    j = {{"architectures", {"BloomForCausalLM"}},
         {"model_type", "bloom"},
         {"vocab_size", c.vocab_size},
         {"n_embed", c.hidden_size},
         {"n_layer", c.num_layers},
         {"num_attention_heads", c.num_heads},
         {"layer_norm_epsilon", c.norm_eps},
         {"apply_residual_connection_post_layernorm", false},
         {"bos_token_id", 1},
         {"eos_token_id", 2},
         {"torch_dtype", "float32"}};
  } else if (c.model_type == "gpt2") {
    // As gpt2's.
    j = {{"architectures", {"GPT2LMHeadModel"}},
         {"model_type", "gpt2"},
         {"vocab_size", c.vocab_size},
         {"n_embd", c.hidden_size},
         {"n_layer", c.num_layers},
         {"n_head", c.num_heads},
         {"n_positions", c.max_position_embeddings},
         {"n_ctx", c.max_position_embeddings},
         {"n_inner", nullptr},
         {"activation_function", "gelu_new"},
         {"layer_norm_epsilon", c.norm_eps},
         {"bos_token_id", 50256 % c.vocab_size},
         {"eos_token_id", 50256 % c.vocab_size}};
  } else {
    j = {{"architectures", {"LlamaForCausalLM"}},
         {"model_type", c.model_type},
         {"vocab_size", c.vocab_size},
         {"hidden_size", c.hidden_size},
         {"intermediate_size", c.intermediate_size},
         {"num_hidden_layers", c.num_layers},
         {"num_attention_heads", c.num_heads},
         {"num_key_value_heads", c.num_kv_heads},
         {"max_position_embeddings", c.max_position_embeddings},
         {"rms_norm_eps", c.norm_eps},
         {"rope_theta", c.rope_theta},
         {"hidden_act", "silu"},
         {"tie_word_embeddings", c.tie_word_embeddings},
         {"attention_bias", c.attention_bias},
         {"bos_token_id", 1},
         {"eos_token_id", 2},
         {"torch_dtype", "float32"},
         {"transformers_version", "4.44.0"}};
    if (c.sliding_window) j["sliding_window"] = *c.sliding_window;
    if (c.rope_scaling.type == RopeScalingType::kLlama3)
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", c.rope_scaling.factor},
                           {"low_freq_factor", c.rope_scaling.low_freq_factor},
                           {"high_freq_factor", c.rope_scaling.high_freq_factor},
                           {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  }
  if (c.model_type == "opt" || c.model_type == "bloom" || c.model_type == "gpt2")
    j["tie_word_embeddings"] = c.tie_word_embeddings;
  return j;
}

void write_hf_folder(const fs::path& folder, const HfWeights& weights, int shards) {
  fs::create_directories(folder);
  const ModelConfig& c = weights.config;
  std::ofstream(folder / "config.json") << hf_config_json(c).dump(2);

  std::vector<std::vector<std::pair<std::string, at::Tensor>>> parts(static_cast<std::size_t>(shards));
  std::size_t i = 0;
  for (const auto& [name, t] : weights.tensors) parts[i++ % parts.size()].emplace_back(name, t);
  if (shards == 1) {
    write_safetensors(folder / "model.safetensors", parts[0]);
    return;
  }
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  for (int s = 0; s < shards; ++s) {
    const std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards);
    write_safetensors(folder / file, parts[static_cast<std::size_t>(s)]);
    for (const auto& [name, t] : parts[static_cast<std::size_t>(s)]) index["weight_map"][name] = file;
  }
  std::ofstream(folder / "model.safetensors.index.json") << index.dump(2);
}

}  // namespace cushioncache::testing
