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
#include "cushioncache/model/llama.h"

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
  c.rms_norm_eps = 1e-5;
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
  for (const auto& [name, shape] : LlamaModel::expected_weights(config)) {
    at::Tensor t;
    if (name.find("norm") != std::string::npos) {
      t = 1.0 + 0.1 * at::randn(shape, gen, at::kFloat);  // norm gains near 1
    } else {
      const double fan_in = static_cast<double>(shape.back());
      t = at::randn(shape, gen, at::kFloat) * (name.find("bias") != std::string::npos ? 0.1 : 1.0 / std::sqrt(fan_in));
    }
    w.tensors[name] = t;
  }
  return w;
}

void write_hf_folder(const fs::path& folder, const HfWeights& weights, int shards) {
  fs::create_directories(folder);
  const ModelConfig& c = weights.config;
  nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}},
                      {"model_type", c.model_type},
                      {"vocab_size", c.vocab_size},
                      {"hidden_size", c.hidden_size},
                      {"intermediate_size", c.intermediate_size},
                      {"num_hidden_layers", c.num_layers},
                      {"num_attention_heads", c.num_heads},
                      {"num_key_value_heads", c.num_kv_heads},
                      {"max_position_embeddings", c.max_position_embeddings},
                      {"rms_norm_eps", c.rms_norm_eps},
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
  std::ofstream(folder / "config.json") << j.dump(2);

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
