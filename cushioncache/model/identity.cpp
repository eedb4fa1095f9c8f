#include "cushioncache/model/identity.h"

#include <cstring>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/tensor_options.h"

namespace cushioncache {
namespace {

struct Fnv1a {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  void add(const void* data, std::size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < size; ++i) hash = (hash ^ p[i]) * 0x100000001b3ull;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }
};

}  // namespace

std::string weights_fingerprint(CausalLM& model) {
  Fnv1a h;
  for (auto& [name, tensor] : model.named_weights()) {
    h.add(name);
    for (auto d : tensor->sizes()) h.add(&d, sizeof(d));
    const std::int64_t n = tensor->numel();
    if (n == 0) continue;
    const std::int64_t samples = std::min<std::int64_t>(64, n);
    at::Tensor index = at::linspace(0, static_cast<double>(n - 1), samples, at::TensorOptions().dtype(at::kDouble)).to(at::kLong);
    at::Tensor values = tensor->detach().reshape({-1}).index_select(0, index.to(tensor->device())).to(at::kCPU, at::kFloat).contiguous();
    h.add(values.data_ptr<float>(), static_cast<std::size_t>(samples) * sizeof(float));
  }
  return fmt::format("{:016x}", h.hash);
}

nlohmann::json describe_model(CausalLM& model, const std::string& path) {
  const ModelConfig& c = model.config();
  std::int64_t parameters = 0, weight_bytes = 0;
  for (auto& [name, tensor] : model.named_weights()) {
    parameters += tensor->numel();
    weight_bytes += tensor->numel() * static_cast<std::int64_t>(tensor->element_size());
  }
  return {{"path", path},
          {"model_type", c.model_type},
          {"layers", c.num_layers},
          {"hidden_size", c.hidden_size},
          {"heads", c.num_heads},
          {"kv_heads", c.num_kv_heads},
          {"vocab_size", c.vocab_size},
          {"context", c.max_position_embeddings},
          {"dtype", dtype_name(model.dtype())},
          {"device", model.device().str()},
          {"parameters", parameters},
          {"weight_bytes", weight_bytes},  // int8 linears count one byte per weight
          {"fingerprint", weights_fingerprint(model)}};
}

}  // namespace cushioncache
