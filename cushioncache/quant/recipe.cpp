#include "cushioncache/quant/recipe.h"

#include <algorithm>
#include <filesystem>

#include "cushioncache/core/error.h"
#include "cushioncache/core/yaml_fields.h"
#include "cushioncache/quant/quantizer.h"

namespace cushioncache {
namespace {

QuantRecipe preset(const std::string& name, const char* activations, bool smooth) {
  QuantRecipe r;
  r.name = name;
  r.weights = parse_quant_spec("w8-per-channel-sym", QuantRole::kWeight);
  r.activations = parse_quant_spec(activations, QuantRole::kActivation);
  if (smooth) r.smoothquant = SmoothQuantOptions{};
  return r;
}

const std::vector<QuantRecipe>& presets() {
  static const std::vector<QuantRecipe> p = {
      preset("w8a8-per-tensor-static", "a8-per-tensor-static-asym-minmax", false),
      preset("w8a8-per-tensor-dynamic", "a8-per-tensor-dynamic-asym", false),
      preset("w8a8-per-token-dynamic", "a8-per-token-dynamic-asym", false),
      preset("sq-o3", "a8-per-tensor-static-asym-minmax", true),
      preset("sq-o2", "a8-per-tensor-dynamic-asym", true),
      preset("sq-o1", "a8-per-token-dynamic-asym", true),
  };
  return p;
}

QuantRecipe recipe_from_yaml(const std::string& path) {
  const YAML::Node root = load_yaml_file(path);
  YamlFields f(root, path, "");
  QuantRecipe r;
  r.name = f.optional<std::string>("name").value_or(std::filesystem::path(path).stem().string());
  r.weights = f.has("weights") ? quant_spec_from_yaml(f.child("weights"), QuantRole::kWeight, path, "weights")
                               : parse_quant_spec("off", QuantRole::kWeight);
  r.activations = f.has("activations") ? quant_spec_from_yaml(f.child("activations"), QuantRole::kActivation, path, "activations")
                                       : parse_quant_spec("off", QuantRole::kActivation);
  if (auto q = f.optional<std::string>("quantizer")) r.quantizer = *q;
  if (auto a = f.optional<bool>("attention_matmuls")) r.attention_matmuls = *a;
  if (auto k = f.optional<bool>("kv_cache")) r.kv_cache = *k;
  if (YAML::Node sq = f.child("smoothquant"); sq && !sq.IsNull()) {
    YamlFields s(sq, path, "smoothquant");
    SmoothQuantOptions options;
    if (auto alpha = s.optional<double>("alpha")) options.alpha = *alpha;
    if (auto sites = s.list<std::string>("sites")) {
      options.sites.clear();
      for (const auto& site : *sites) {
        try {
          options.sites.push_back(parse_site(site));
        } catch (const Error& e) {
          throw_error(ErrorKind::kInvalidConfig, "{}: {}", s.where("sites"), e.message());
        }
      }
    }
    s.finish();
    r.smoothquant = options;
  }
  if (YAML::Node cal = f.child("calibration"); cal && !cal.IsNull()) {
    YamlFields c(cal, path, "calibration");
    if (auto d = c.optional<std::string>("data")) r.calibration.data = *d;
    if (auto n = c.optional<std::int64_t>("samples", at_least(1), ">= 1")) r.calibration.samples = *n;
    if (auto t = c.optional<std::int64_t>("seq_len", at_least(2), ">= 2")) r.calibration.seq_len = *t;
    if (auto seed = c.optional<std::uint64_t>("seed")) r.calibration.seed = *seed;
    c.finish();
  }
  f.finish();
  with_context(path, [&] { r.validate(); });
  return r;
}

const char* estimator_name(RangeEstimator e) {
  switch (e) {
    case RangeEstimator::kMinMax: return "minmax";
    case RangeEstimator::kEma: return "ema";
    case RangeEstimator::kPercentile: return "percentile";
  }
  return "?";
}

nlohmann::json spec_json(const QuantSpec& s) {
  if (!s.enabled()) return "off";
  nlohmann::json j = {{"spec", s.to_string()}, {"bits", s.bits}, {"symmetric", s.symmetric}, {"granularity", to_string(s.granularity)}};
  if (s.granularity == Granularity::kPerGroup) j["group_size"] = s.group_size;
  if (s.role == QuantRole::kActivation) {
    j["mode"] = s.mode == RangeMode::kStatic ? "static" : "dynamic";
    if (s.mode == RangeMode::kStatic) j["estimator"] = estimator_name(s.estimator);
  }
  return j;
}

}  // namespace

bool QuantRecipe::needs_calibration() const {
  return smoothquant.has_value() || (activations.enabled() && activations.mode == RangeMode::kStatic);
}

void QuantRecipe::validate() const {
  if (weights.role != QuantRole::kWeight || activations.role != QuantRole::kActivation)
    throw_error(ErrorKind::kInternal, "recipe '{}': weight and activation specs swapped", name);
  weights.validate();
  activations.validate();
  if ((attention_matmuls || kv_cache) && !activations.enabled())
    throw_error(ErrorKind::kInvalidConfig, "recipe '{}': attention_matmuls / kv_cache need an activation spec", name);
  if (smoothquant && !(smoothquant->alpha >= 0 && smoothquant->alpha <= 1))
    throw_error(ErrorKind::kInvalidConfig, "recipe '{}': smoothquant.alpha = {} must be in [0, 1]", name, smoothquant->alpha);
  if (smoothquant)
    for (Site s : smoothquant->sites)
      if (s != Site::kAttnInput && s != Site::kOProjInput && s != Site::kMlpInput && s != Site::kDownProjInput)
        throw_error(ErrorKind::kInvalidConfig, "recipe '{}': SmoothQuant cannot smooth site {} (only linear inputs)", name, site_name(s));
  if (calibration.samples < 1 || calibration.seq_len < 2)
    throw_error(ErrorKind::kInvalidConfig, "recipe '{}': calibration needs samples >= 1 and seq_len >= 2", name);
  const auto kinds = quantizer_kinds();
  if (std::find(kinds.begin(), kinds.end(), quantizer) == kinds.end()) {
    std::string known;
    for (const auto& k : kinds) known += (known.empty() ? "" : ", ") + k;
    throw_error(ErrorKind::kInvalidConfig, "recipe '{}': quantizer '{}' is not registered (known: {})", name, quantizer, known);
  }
}

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& p : presets()) n.push_back(p.name);
    return n;
  }();
  return names;
}

QuantRecipe load_recipe(const std::string& name_or_path) {
  for (const auto& p : presets())
    if (p.name == name_or_path) return p;
  const auto ext = std::filesystem::path(name_or_path).extension();
  if (ext == ".yaml" || ext == ".yml") return recipe_from_yaml(name_or_path);
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw_error(ErrorKind::kInvalidArgument, "quantization '{}' is neither a preset ({}) nor a .yaml recipe", name_or_path, known);
}

nlohmann::json to_json(const QuantRecipe& r) {
  nlohmann::json j = {{"name", r.name},
                      {"weights", spec_json(r.weights)},
                      {"activations", spec_json(r.activations)},
                      {"quantizer", r.quantizer},
                      {"attention_matmuls", r.attention_matmuls},
                      {"kv_cache", r.kv_cache}};
  if (r.smoothquant) {
    nlohmann::json sites = nlohmann::json::array();
    for (Site s : r.smoothquant->sites) sites.push_back(site_name(s));
    j["smoothquant"] = {{"alpha", r.smoothquant->alpha}, {"sites", sites}};
  }
  if (r.needs_calibration())
    j["calibration"] = {{"data", r.calibration.data},
                        {"samples", r.calibration.samples},
                        {"seq_len", r.calibration.seq_len},
                        {"seed", r.calibration.seed}};
  return j;
}

}  // namespace cushioncache
