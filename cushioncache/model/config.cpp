#include "cushioncache/model/config.h"

#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/core/tensor_options.h"
#include "cushioncache/io/json_file.h"

namespace cushioncache {
using nlohmann::json;

namespace {

c10::ScalarType parse_torch_dtype(const json& j) {
  std::string name = "float32";
  if (j.contains("torch_dtype") && j["torch_dtype"].is_string()) name = j["torch_dtype"].get<std::string>();
  if (j.contains("dtype") && j["dtype"].is_string()) name = j["dtype"].get<std::string>();  // transformers >= 4.56
  try {
    return parse_float_dtype(name);
  } catch (const Error&) {
    throw_error(ErrorKind::kInvalidConfig, "field 'torch_dtype' = '{}' is not a float dtype", name);
  }
}

RopeScaling parse_rope_scaling(const json& spec) {
  RopeScaling r;
  if (spec.is_null()) return r;
  if (!spec.is_object()) throw_error(ErrorKind::kInvalidConfig, "field 'rope_scaling' must be an object");
  std::string type = optional_field<std::string>(spec, "rope_type", optional_field<std::string>(spec, "type", "default"));
  if (type == "default") return r;
  r.factor = required_field<double>(spec, "factor");
  if (!(r.factor >= 1.0)) throw_error(ErrorKind::kInvalidConfig, "rope_scaling.factor = {} must be >= 1", r.factor);
  if (type == "linear") {
    r.type = RopeScalingType::kLinear;
  } else if (type == "llama3") {
    r.type = RopeScalingType::kLlama3;
    r.low_freq_factor = required_field<double>(spec, "low_freq_factor");
    r.high_freq_factor = required_field<double>(spec, "high_freq_factor");
    r.original_max_position_embeddings = required_field<std::int64_t>(spec, "original_max_position_embeddings");
    if (!(r.high_freq_factor > r.low_freq_factor))
      throw_error(ErrorKind::kInvalidConfig, "rope_scaling.high_freq_factor must exceed low_freq_factor");
  } else {
    throw_error(ErrorKind::kUnsupported, "rope_scaling type '{}' is not supported (default, linear, llama3 are)", type);
  }
  return r;
}

std::vector<std::int64_t> parse_token_ids(const json& j, const char* key) {
  std::vector<std::int64_t> ids;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return ids;
  if (it->is_number_integer()) return {it->get<std::int64_t>()};
  if (it->is_array()) {
    for (const auto& v : *it) {
      if (!v.is_number_integer()) throw_error(ErrorKind::kInvalidConfig, "field '{}' must hold integers", key);
      ids.push_back(v.get<std::int64_t>());
    }
    return ids;
  }
  throw_error(ErrorKind::kInvalidConfig, "field '{}' must be an integer or a list of integers", key);
}

}  // namespace

void ModelConfig::validate() const {
  auto positive = [](const char* field, std::int64_t v) {
    if (v <= 0) throw_error(ErrorKind::kInvalidConfig, "field '{}' = {} must be positive", field, v);
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_layers);
  positive("num_attention_heads", num_heads);
  positive("num_key_value_heads", num_kv_heads);
  positive("head_dim", head_dim);
  positive("max_position_embeddings", max_position_embeddings);
  if (num_heads % num_kv_heads != 0)
    throw_error(ErrorKind::kInvalidConfig, "num_attention_heads {} is not a multiple of num_key_value_heads {}", num_heads, num_kv_heads);
  if (head_dim % 2 != 0) throw_error(ErrorKind::kInvalidConfig, "head_dim {} must be even for RoPE", head_dim);
  if (!(rms_norm_eps > 0)) throw_error(ErrorKind::kInvalidConfig, "field 'rms_norm_eps' = {} must be positive", rms_norm_eps);
  if (!(rope_theta > 0)) throw_error(ErrorKind::kInvalidConfig, "field 'rope_theta' = {} must be positive", rope_theta);
  if (sliding_window && *sliding_window <= 0)
    throw_error(ErrorKind::kInvalidConfig, "field 'sliding_window' = {} must be positive", *sliding_window);
}

ModelConfig parse_hf_config(const json& j) {
  if (!j.is_object()) throw_error(ErrorKind::kInvalidConfig, "config is not a JSON object");
  ModelConfig c;
  c.model_type = required_field<std::string>(j, "model_type");
  if (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2")
    throw_error(ErrorKind::kUnsupported, "model_type '{}' is not supported (llama, mistral, qwen2 are)", c.model_type);
  const auto act = optional_field<std::string>(j, "hidden_act", "silu");
  if (act != "silu") throw_error(ErrorKind::kUnsupported, "hidden_act '{}' (the LLaMA family uses silu)", act);

  c.vocab_size = required_field<std::int64_t>(j, "vocab_size");
  c.hidden_size = required_field<std::int64_t>(j, "hidden_size");
  c.intermediate_size = required_field<std::int64_t>(j, "intermediate_size");
  c.num_layers = required_field<std::int64_t>(j, "num_hidden_layers");
  c.num_heads = required_field<std::int64_t>(j, "num_attention_heads");
  c.num_kv_heads = optional_field<std::int64_t>(j, "num_key_value_heads", c.num_heads);
  c.head_dim = optional_field<std::int64_t>(j, "head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.max_position_embeddings = optional_field<std::int64_t>(j, "max_position_embeddings", 2048);
  c.rms_norm_eps = optional_field<double>(j, "rms_norm_eps", 1e-6);
  c.tie_word_embeddings = optional_field<bool>(j, "tie_word_embeddings", false);

  // transformers 5 moves rope_theta and the scaling into "rope_parameters".
  json rope = j.value("rope_parameters", json());
  if (!rope.is_null() && !rope.is_object()) throw_error(ErrorKind::kInvalidConfig, "field 'rope_parameters' must be an object");
  c.rope_theta = optional_field<double>(j, "rope_theta", rope.is_object() ? optional_field<double>(rope, "rope_theta", 10000.0) : 10000.0);
  c.rope_scaling = parse_rope_scaling(j.value("rope_scaling", rope));

  if (c.model_type == "qwen2") {
    c.attention_bias = true;  // Qwen2 always has q/k/v biases and none on o_proj
    if (optional_field<bool>(j, "use_sliding_window", false))
      throw_error(ErrorKind::kUnsupported, "Qwen2 use_sliding_window (per-layer windows) is not supported");
  } else {
    c.attention_bias = optional_field<bool>(j, "attention_bias", false);
    c.o_proj_bias = c.attention_bias;
    c.mlp_bias = optional_field<bool>(j, "mlp_bias", false);
  }
  if (c.model_type == "mistral") {
    auto w = j.find("sliding_window");
    if (w != j.end() && !w->is_null()) c.sliding_window = required_field<std::int64_t>(j, "sliding_window");
  }
  auto bos = parse_token_ids(j, "bos_token_id");
  if (!bos.empty()) c.bos_token_id = bos.front();
  c.eos_token_ids = parse_token_ids(j, "eos_token_id");
  c.checkpoint_dtype = parse_torch_dtype(j);
  c.validate();
  return c;
}

ModelConfig read_hf_config(const std::filesystem::path& config_json) {
  const json j = read_json_file(config_json);
  return with_json_context(config_json.string(), [&] { return parse_hf_config(j); });
}

json to_hf_config(const ModelConfig& c) {
  static const char* kArchitectures[][2] = {
      {"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}};
  json j;
  for (const auto& a : kArchitectures)
    if (c.model_type == a[0]) j["architectures"] = {a[1]};
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.model_type == "llama") {
    j["attention_bias"] = c.attention_bias;
    j["mlp_bias"] = c.mlp_bias;
  }
  if (c.sliding_window) j["sliding_window"] = *c.sliding_window;
  switch (c.rope_scaling.type) {
    case RopeScalingType::kNone: j["rope_scaling"] = nullptr; break;
    case RopeScalingType::kLinear: j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_scaling.factor}}; break;
    case RopeScalingType::kLlama3:
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", c.rope_scaling.factor},
                           {"low_freq_factor", c.rope_scaling.low_freq_factor},
                           {"high_freq_factor", c.rope_scaling.high_freq_factor},
                           {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
      break;
  }
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids.front();
  else if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids;
  j["torch_dtype"] = dtype_name(c.checkpoint_dtype);
  return j;
}

}  // namespace cushioncache
