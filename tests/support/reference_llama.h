// An independent float64 implementation of Hugging Face's LlamaForCausalLM forward pass,
// written the plain way (one head at a time, explicit rotation of each pair), used as the
// expectation the library's model is checked against.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "cushioncache/model/loader.h"

namespace cushioncache::testing {

// Logits [T, vocab] (float64) for one sequence at positions 0..T-1.
at::Tensor reference_llama_logits(const HfWeights& weights, const std::vector<std::int64_t>& ids);

// RoPE inverse frequencies in float64 from the formulas (default, linear, llama3).
std::vector<double> reference_inverse_frequencies(const ModelConfig& config);

}  // namespace cushioncache::testing
