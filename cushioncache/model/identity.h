// What a result or artifact was computed with: a description of the model (path,
// architecture, dtype, device) and a fingerprint of its weights as loaded.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "cushioncache/model/causal_lm.h"

namespace cushioncache {

// 16 hex digits: FNV-1a over every weight's name, shape and 64 evenly spaced values (as
// float32). Changes when any weight tensor is replaced, reshaped or re-quantized; equal for
// the same values on any device, in any dtype that holds them exactly (a bfloat16
// checkpoint loaded in bfloat16 or float32).
std::string weights_fingerprint(CausalLM& model);

// {"path", "model_type", "layers", "hidden_size", "heads", "kv_heads", "vocab_size",
//  "context", "dtype", "device", "parameters", "weight_bytes", "fingerprint"}
nlohmann::json describe_model(CausalLM& model, const std::string& path);

}  // namespace cushioncache
