#include "cushioncache/artifact/artifact.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/io/safetensors.h"
#include "cushioncache/model/config.h"
#include "cushioncache/model/identity.h"

namespace cushioncache {
namespace {

constexpr const char* kFormat = "cushioncache-artifact";
constexpr int kVersion = 1;

std::string hash_text(const std::string& text) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ull;
  return fmt::format("{:016x}", h);
}

}  // namespace

ModelIdentity identify(CausalLM& model) {
  nlohmann::json config = to_hf_config(model.config());
  config.erase("torch_dtype");  // the same weights in another dtype are the same model
  return {model.config().model_type, hash_text(config.dump()), weights_fingerprint(model)};
}

Artifact make_token_artifact(CausalLM& model, std::string kind, const std::vector<std::int64_t>& tokens) {
  Artifact a;
  a.kind = std::move(kind);
  a.tokens = tokens;
  a.prefix = compute_kv_cache(model, tokens);
  a.identity = identify(model);
  return a;
}

void save_artifact(const Artifact& a, const std::filesystem::path& path) {
  if (a.prefix.empty() || a.prefix.batch_size() != 1)
    throw_error(ErrorKind::kInvalidArgument, "an artifact holds a prefix KV of batch 1 ({} given)", a.prefix.batch_size());
  if (static_cast<std::int64_t>(a.tokens.size()) != a.prefix.length())
    throw_error(ErrorKind::kInvalidArgument, "{} prefix tokens but a KV of length {}", a.tokens.size(), a.prefix.length());
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  tensors.emplace_back("prefix.tokens", at::tensor(a.tokens, at::kLong));
  for (std::size_t l = 0; l < a.prefix.layers.size(); ++l) {
    tensors.emplace_back(fmt::format("layers.{}.key", l), a.prefix.layers[l].key.detach());
    tensors.emplace_back(fmt::format("layers.{}.value", l), a.prefix.layers[l].value.detach());
  }
  for (const auto& [name, t] : a.ranges) tensors.emplace_back("ranges." + name, t);
  const nlohmann::json identity = {{"model_type", a.identity.model_type}, {"config_hash", a.identity.config_hash},
                                   {"fingerprint", a.identity.fingerprint}};
  write_safetensors(path, tensors,
                    {{"format", kFormat}, {"version", std::to_string(kVersion)}, {"kind", a.kind}, {"identity", identity.dump()},
                     {"info", a.info.dump()}});
}

Artifact load_artifact(const std::filesystem::path& path) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  return with_context(path.string(), [&] {
    auto field = [&](const char* key) { return file.required_metadata(key, "CushionCache artifact"); };
    if (field("format") != kFormat) throw_error(ErrorKind::kCorruptInput, "not a CushionCache artifact (format '{}')", field("format"));
    if (field("version") != std::to_string(kVersion))
      throw_error(ErrorKind::kUnsupported, "artifact version {} (this build reads {})", field("version"), kVersion);
    Artifact a;
    a.kind = field("kind");
    try {
      const auto identity = nlohmann::json::parse(field("identity"));
      a.identity = {identity.at("model_type").get<std::string>(), identity.at("config_hash").get<std::string>(),
                    identity.at("fingerprint").get<std::string>()};
      a.info = nlohmann::json::parse(field("info"));
    } catch (const nlohmann::json::exception& e) {
      throw_error(ErrorKind::kCorruptInput, "artifact metadata is not valid JSON: {}", e.what());
    }
    const at::Tensor tokens = file.load("prefix.tokens");
    if (tokens.dim() != 1 || tokens.scalar_type() != at::kLong) throw_error(ErrorKind::kCorruptInput, "'prefix.tokens' must be int64 [P]");
    a.tokens.assign(tokens.data_ptr<std::int64_t>(), tokens.data_ptr<std::int64_t>() + tokens.numel());
    for (std::size_t l = 0;; ++l) {
      const std::string key = fmt::format("layers.{}.key", l), value = fmt::format("layers.{}.value", l);
      if (!file.contains(key)) break;
      a.prefix.layers.push_back({file.load(key), file.load(value)});
    }
    if (a.prefix.layers.empty()) throw_error(ErrorKind::kCorruptInput, "the artifact holds no 'layers.0.key'");
    a.prefix.tokens = tokens.unsqueeze(0);
    if (a.prefix.length() != tokens.numel())
      throw_error(ErrorKind::kCorruptInput, "{} prefix tokens but a KV of length {}", tokens.numel(), a.prefix.length());
    for (const auto& name : file.names())
      if (name.rfind("ranges.", 0) == 0) a.ranges[name.substr(7)] = file.load(name);
    return a;
  });
}

void bind_artifact(Artifact& a, CausalLM& model, const std::string& source) {
  const ModelIdentity here = identify(model);
  if (!(a.identity == here))
    throw_error(ErrorKind::kMismatch,
                "{}: made for a different model ({}, config {}, weights {}); this model is {}, config {}, weights {}", source,
                a.identity.model_type, a.identity.config_hash, a.identity.fingerprint, here.model_type, here.config_hash,
                here.fingerprint);
  with_context(source, [&] { a.prefix.check_compatible(model.config()); });
  for (auto& layer : a.prefix.layers) {
    layer.key = layer.key.to(model.device(), model.dtype());
    layer.value = layer.value.to(model.device(), model.dtype());
  }
  a.prefix.tokens = a.prefix.tokens.to(model.device());
}

Artifact load_artifact(const std::filesystem::path& path, CausalLM& model) {
  Artifact a = load_artifact(path);
  bind_artifact(a, model, path.string());
  return a;
}

}  // namespace cushioncache
