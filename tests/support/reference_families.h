// Independent float64 implementations of Hugging Face's OPTForCausalLM, BloomForCausalLM
// and GPT2LMHeadModel forward passes, written the plain way from the checkpoint tensors
// as stored (GPT-2's Conv1D [in, out], BLOOM's per-head interleaved query_key_value), one
// head and one query at a time, ALiBi slopes from the paper's formula. The expectation
// the library's models are checked against.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "cushioncache/model/loader.h"

namespace cushioncache::testing {

// Logits [T, vocab] (float64) for one sequence at positions 0..T-1; weights.config names
// the family (opt, bloom, gpt2).
at::Tensor reference_family_logits(const HfWeights& weights, const std::vector<std::int64_t>& ids);

// ALiBi slope of head h of n: 2^(-8 (h + 1) / n) for n a power of two; otherwise the
// closest power of two's slopes, then every other slope of the next power of two.
double reference_alibi_slope(std::int64_t head, std::int64_t heads);

}  // namespace cushioncache::testing
