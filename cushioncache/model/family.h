// The model families the loader knows, by config.json's model_type. A family reads its
// own config.json keys, lists the tensors its checkpoints hold (names and shapes exactly
// as Hugging Face stores them) and builds its CausalLM. Nothing outside model/ names a
// family: the rest of the library sees linears, activation sites and site producers.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include "cushioncache/model/causal_lm.h"
#include "cushioncache/model/config.h"
#include "cushioncache/model/layers.h"
#include "cushioncache/model/linear.h"

namespace cushioncache {

// Names and shapes, in checkpoint layout (GPT-2's Conv1D weights are [in, out]).
using WeightList = std::vector<std::pair<std::string, std::vector<std::int64_t>>>;

// Supplies the tensor stored under a Hugging Face name, already checked against the
// expected shape and on the model's dtype and device (see model/loader.h).
using WeightSource = std::function<at::Tensor(const std::string& name, const std::vector<std::int64_t>& shape)>;

using NamedWeights = std::vector<std::pair<std::string, at::Tensor*>>;
// name.weight and name.bias.
void append_layer_norm(NamedWeights& out, const std::string& name, LayerNorm& norm);
// Every linear's weight (and bias) under its name.
void append_linears(NamedWeights& out, const std::vector<LinearRef>& linears);

// What a family's constructor takes its tensors through: by name, at the shape its
// expected_weights() lists.
class WeightFetcher {
 public:
  WeightFetcher(const WeightList& expected, const WeightSource& source);
  at::Tensor operator()(const std::string& name) const;
  Linear linear(const std::string& name, bool bias) const;  // name.weight (and name.bias)
  LayerNorm layer_norm(const std::string& name) const;      // name.weight and name.bias

 private:
  std::map<std::string, std::vector<std::int64_t>> shapes_;
  const WeightSource& source_;
};

struct ModelFamily {
  std::vector<std::string> model_types;  // config.json model_type values it serves
  PositionKind positions = PositionKind::kRotary;
  // The leading name part of the *ForCausalLM checkpoints ("model." / "transformer.").
  // Checkpoints saved from the base model (the released facebook/opt-*, bigscience/bloom-*
  // and gpt2 files) lack it, so the loader also looks for each name without it.
  std::string base_prefix;
  // What every tensor of block l is named after: "<layer_prefix><l>." ("model.layers.").
  std::string layer_prefix;
  std::string (*architecture)(const ModelConfig&);               // "OPTForCausalLM"
  void (*parse)(const nlohmann::json& json, ModelConfig& config);  // the family's keys
  void (*write)(const ModelConfig& config, nlohmann::json& json);  // as transformers writes them
  WeightList (*expected_weights)(const ModelConfig& config);
  std::unique_ptr<CausalLM> (*build)(ModelConfig config, const WeightSource& weights);
  // A tensor of named_weights() in the layout its checkpoint stores (GPT-2 transposes).
  at::Tensor (*checkpoint_layout)(const std::string& name, const at::Tensor& tensor) = nullptr;
};

// The block a tensor of this family belongs to, or -1 (embeddings, final norm, head).
int block_of(const ModelFamily& family, const std::string& name);

// kUnsupported listing the supported model types when `model_type` is not one of them.
const ModelFamily& model_family(const std::string& model_type);
std::vector<std::string> supported_model_types();

// The families (defined beside each model).
const ModelFamily& llama_family();
const ModelFamily& opt_family();
const ModelFamily& bloom_family();
const ModelFamily& gpt2_family();

}  // namespace cushioncache
