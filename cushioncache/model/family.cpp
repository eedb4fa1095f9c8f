#include "cushioncache/model/family.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cushioncache/core/error.h"

namespace cushioncache {
namespace {

const std::vector<const ModelFamily*>& families() {
  static const std::vector<const ModelFamily*> all = {&llama_family(), &opt_family(), &bloom_family(), &gpt2_family()};
  return all;
}

}  // namespace

WeightFetcher::WeightFetcher(const WeightList& expected, const WeightSource& source) : source_(source) {
  for (const auto& [name, shape] : expected) shapes_.emplace(name, shape);
}

at::Tensor WeightFetcher::operator()(const std::string& name) const {
  auto it = shapes_.find(name);
  if (it == shapes_.end()) throw_error(ErrorKind::kInternal, "tensor '{}' is not among the family's expected weights", name);
  return source_(name, it->second);
}

Linear WeightFetcher::linear(const std::string& name, bool bias) const {
  Linear l;
  l.weight = (*this)(name + ".weight");
  if (bias) l.bias = (*this)(name + ".bias");
  return l;
}

LayerNorm WeightFetcher::layer_norm(const std::string& name) const { return {(*this)(name + ".weight"), (*this)(name + ".bias")}; }

void append_layer_norm(NamedWeights& out, const std::string& name, LayerNorm& norm) {
  out.emplace_back(name + ".weight", &norm.weight);
  out.emplace_back(name + ".bias", &norm.bias);
}

void append_linears(NamedWeights& out, const std::vector<LinearRef>& linears) {
  for (const LinearRef& ref : linears) {
    out.emplace_back(ref.name + ".weight", &ref.linear->weight);
    if (ref.linear->bias.defined()) out.emplace_back(ref.name + ".bias", &ref.linear->bias);
  }
}

int block_of(const ModelFamily& family, const std::string& name) {
  if (name.compare(0, family.layer_prefix.size(), family.layer_prefix) != 0) return -1;
  std::size_t i = family.layer_prefix.size();
  int layer = 0;
  bool digits = false;
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i, digits = true) layer = layer * 10 + (name[i] - '0');
  return digits && i < name.size() && name[i] == '.' ? layer : -1;
}

std::vector<std::string> supported_model_types() {
  std::vector<std::string> types;
  for (const ModelFamily* f : families()) types.insert(types.end(), f->model_types.begin(), f->model_types.end());
  return types;
}

const ModelFamily& model_family(const std::string& model_type) {
  for (const ModelFamily* f : families())
    if (std::find(f->model_types.begin(), f->model_types.end(), model_type) != f->model_types.end()) return *f;
  throw_error(ErrorKind::kUnsupported, "model_type '{}' is not supported ({} are)", model_type, fmt::join(supported_model_types(), ", "));
}

PositionKind ModelConfig::positions() const { return model_family(model_type).positions; }

}  // namespace cushioncache
