#include "cushioncache/model/config.h"

#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/core/tensor_options.h"
#include "cushioncache/io/json_file.h"
#include "cushioncache/model/family.h"

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
  if (word_embed_proj_dim < 0)
    throw_error(ErrorKind::kInvalidConfig, "field 'word_embed_proj_dim' = {} must be positive", word_embed_proj_dim);
  if (num_heads % num_kv_heads != 0)
    throw_error(ErrorKind::kInvalidConfig, "num_attention_heads {} is not a multiple of num_key_value_heads {}", num_heads, num_kv_heads);
  if (!(norm_eps > 0)) throw_error(ErrorKind::kInvalidConfig, "the norm epsilon {} must be positive", norm_eps);
  if (hidden_act != "silu" && hidden_act != "relu" && hidden_act != "gelu" && hidden_act != "gelu_new")
    throw_error(ErrorKind::kUnsupported, "activation '{}' is not supported (silu, relu, gelu, gelu_new are)", hidden_act);
  if (positions() == PositionKind::kRotary) {
    if (head_dim % 2 != 0) throw_error(ErrorKind::kInvalidConfig, "head_dim {} must be even for RoPE", head_dim);
    if (!(rope_theta > 0)) throw_error(ErrorKind::kInvalidConfig, "field 'rope_theta' = {} must be positive", rope_theta);
  } else if (num_heads * head_dim != hidden_size) {
    throw_error(ErrorKind::kInvalidConfig, "hidden_size {} is not divisible by the {} attention heads", hidden_size, num_heads);
  }
  if (sliding_window && *sliding_window <= 0)
    throw_error(ErrorKind::kInvalidConfig, "field 'sliding_window' = {} must be positive", *sliding_window);
}

ModelConfig parse_hf_config(const json& j) {
  if (!j.is_object()) throw_error(ErrorKind::kInvalidConfig, "config is not a JSON object");
  ModelConfig c;
  c.model_type = required_field<std::string>(j, "model_type");
  const ModelFamily& family = model_family(c.model_type);
  family.parse(j, c);
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
  const ModelFamily& family = model_family(c.model_type);
  json j;
  j["architectures"] = {family.architecture(c)};
  j["model_type"] = c.model_type;
  family.write(c, j);
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids.front();
  else if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids;
  j["torch_dtype"] = dtype_name(c.checkpoint_dtype);
  return j;
}

}  // namespace cushioncache
