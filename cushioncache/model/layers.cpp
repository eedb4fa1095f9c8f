#include "cushioncache/model/layers.h"

#include <ATen/ATen.h>

#include "cushioncache/core/error.h"

namespace cushioncache {

at::Tensor LayerNorm::operator()(const at::Tensor& x, double eps) const {
  return at::layer_norm(x, {x.size(-1)}, weight, bias, eps);
}

at::Tensor apply_activation(const std::string& name, const at::Tensor& x) {
  if (name == "silu") return at::silu(x);
  if (name == "relu") return at::relu(x);
  if (name == "gelu") return at::gelu(x);
  if (name == "gelu_new") return at::gelu(x, "tanh");
  throw_error(ErrorKind::kUnsupported, "activation '{}' is not supported (silu, relu, gelu, gelu_new are)", name);
}

bool is_positively_homogeneous(const std::string& name) { return name == "relu"; }

}  // namespace cushioncache
