// Pieces the LayerNorm families (OPT, BLOOM, GPT-2) share: the MLP nonlinearities by
// their config.json names, and LayerNorm with its Hugging Face weight and bias.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

namespace cushioncache {

struct LayerNorm {
  at::Tensor weight;  // [C] gain
  at::Tensor bias;    // [C]
  at::Tensor operator()(const at::Tensor& x, double eps) const;
};

// silu, relu, gelu (erf), gelu_new (GPT-2's and BLOOM's tanh approximation).
at::Tensor apply_activation(const std::string& name, const at::Tensor& x);

// Whether f(x / s) = f(x) / s for s > 0, so a per-channel scale can move through f
// (SmoothQuant may then fold the next linear's input into the previous one's rows).
bool is_positively_homogeneous(const std::string& name);

}  // namespace cushioncache
