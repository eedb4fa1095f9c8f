#include "cushioncache/quant/recipe.h"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/core/yaml_fields.h"
#include "cushioncache/quant/spec_yaml.h"
#include "cushioncache/quant/quantizer.h"

namespace cushioncache {
namespace {

QuantRecipe preset(const std::string& name, const char* activations, const std::vector<Site>* smooth_sites) {
  QuantRecipe r;
  r.name = name;
  r.weights = parse_quant_spec("w8-per-channel-sym", QuantRole::kWeight);
  r.activations = parse_quant_spec(activations, QuantRole::kActivation);
  if (smooth_sites != nullptr) {
    r.smoothquant = SmoothQuantOptions{};
    r.smoothquant->sites = *smooth_sites;
  }
  return r;
}

const std::vector<QuantRecipe>& presets() {
  const auto* norm = &smoothquant_norm_sites();
  const auto* all = &smoothquant_all_sites();
  static const std::vector<QuantRecipe> p = {
      preset("w8a8-per-tensor-static", "a8-per-tensor-static-asym-minmax", nullptr),
      preset("w8a8-per-tensor-dynamic", "a8-per-tensor-dynamic-asym", nullptr),
      preset("w8a8-per-token-dynamic", "a8-per-token-dynamic-asym", nullptr),
      preset("sq-o3", "a8-per-tensor-static-asym-minmax", norm),
      preset("sq-o2", "a8-per-tensor-dynamic-asym", norm),
      preset("sq-o1", "a8-per-token-dynamic-asym", norm),
      preset("sq-o3-all", "a8-per-tensor-static-asym-minmax", all),
      preset("sq-o2-all", "a8-per-tensor-dynamic-asym", all),
      preset("sq-o1-all", "a8-per-token-dynamic-asym", all),
  };
  return p;
}

std::vector<Site> parse_sites(const std::vector<std::string>& names, const YamlFields& where) {
  std::vector<Site> sites;
  for (const auto& site : names) {
    try {
      sites.push_back(parse_site(site));
    } catch (const Error& e) {
      throw_error(ErrorKind::kInvalidConfig, "{}: {}", where.where("sites"), e.message());
    }
  }
  return sites;
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
    if (YAML::Node sites = s.child("sites"); sites && !sites.IsNull()) {
      if (sites.IsSequence()) {
        options.sites = parse_sites(yaml_list<std::string>(sites, path, "smoothquant.sites"), s);
      } else {
        const auto name = yaml_scalar<std::string>(sites, path, "smoothquant.sites");
        if (name == "norm") options.sites = smoothquant_norm_sites();
        else if (name == "all") options.sites = smoothquant_all_sites();
        else
          throw_error(ErrorKind::kInvalidConfig, "{}: 'smoothquant.sites' must be norm, all or a list of sites, not '{}'", s.where("sites"),
                      name);
      }
    }
    s.finish();
    r.smoothquant = options;
  }
  if (YAML::Node cal = f.child("calibration"); cal && !cal.IsNull()) {
    YamlFields c(cal, path, "calibration");
    if (auto d = c.optional<std::string>("data")) r.calibration.windows.data = *d;
    if (auto n = c.optional<std::int64_t>("samples", at_least(1), ">= 1")) r.calibration.windows.samples = *n;
    if (auto t = c.optional<std::int64_t>("seq_len", at_least(2), ">= 2")) r.calibration.windows.seq_len = *t;
    if (auto seed = c.optional<std::uint64_t>("seed")) r.calibration.windows.seed = *seed;
    if (auto bos = c.optional<bool>("include_bos")) r.calibration.include_bos = *bos;
    if (auto weights = c.optional<std::string>("weights")) {
      if (*weights == "float") r.calibration.weights = CalibrationWeights::kFloat;
      else if (*weights == "quantized") r.calibration.weights = CalibrationWeights::kQuantized;
      else throw_error(ErrorKind::kInvalidConfig, "{}: 'calibration.weights' must be float or quantized, not '{}'", c.where("weights"), *weights);
    }
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

const std::vector<Site>& smoothquant_norm_sites() {
  static const std::vector<Site> sites = {Site::kAttnInput, Site::kMlpInput};
  return sites;
}

const std::vector<Site>& smoothquant_all_sites() {
  static const std::vector<Site> sites = {Site::kAttnInput, Site::kOProjInput, Site::kMlpInput, Site::kDownProjInput};
  return sites;
}

std::string SmoothQuantOptions::sites_name() const {
  // Order does not matter to the folding; a list naming the same sites is the same method.
  auto same = [&](const std::vector<Site>& named) {
    return sites.size() == named.size() && std::is_permutation(sites.begin(), sites.end(), named.begin());
  };
  if (same(smoothquant_norm_sites())) return "norm";
  if (same(smoothquant_all_sites())) return "all";
  return "custom";
}

const char* calibration_weights_name(CalibrationWeights weights) {
  return weights == CalibrationWeights::kFloat ? "float" : "quantized";
}

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
  if (calibration.windows.samples < 1 || calibration.windows.seq_len < 2)
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
    // "norm" and "all" by name, so that reports tell SmoothQuant's sites from ours at a glance.
    nlohmann::json sites = nlohmann::json::array();
    for (Site s : r.smoothquant->sites) sites.push_back(site_name(s));
    const std::string named = r.smoothquant->sites_name();
    j["smoothquant"] = {{"alpha", r.smoothquant->alpha}, {"sites", named == "custom" ? sites : nlohmann::json(named)}};
  }
  if (r.needs_calibration()) {
    j["calibration"] = to_json(r.calibration.windows);
    j["calibration"]["include_bos"] = r.calibration.include_bos;
    if (r.activations.enabled() && r.activations.mode == RangeMode::kStatic)
      j["calibration"]["weights"] = calibration_weights_name(r.calibration.weights);
  }
  return j;
}

std::vector<RecipeDefinition> recipe_definitions(const QuantRecipe& r) {
  std::vector<RecipeDefinition> rows;
  const bool static_ranges = r.activations.enabled() && r.activations.mode == RangeMode::kStatic;
  {
    RecipeDefinition d{"SmoothQuant sites", "none (no SmoothQuant)", "SmoothQuant's O1-O3 (the sq-o* rows), alpha 0.8",
                       "the inputs after a norm: q/k/v and gate/up (LLaMA, Mistral), q/k/v and fc1 (OPT), query_key_value and "
                       "dense_h_to_4h (BLOOM); alpha 0.5 unless set per model"};
    if (r.smoothquant) {
      const std::string named = r.smoothquant->sites_name();
      std::string list;
      for (Site s : r.smoothquant->sites) list += (list.empty() ? "" : ", ") + std::string(site_name(s));
      d.ours = named == "norm"  ? fmt::format("norm: {} (the inputs after a norm), alpha {}", list, r.smoothquant->alpha)
               : named == "all" ? fmt::format("all: {} (o_proj and down_proj folded into v_proj and up_proj rows; stronger than "
                                              "SmoothQuant), alpha {}", list, r.smoothquant->alpha)
                                : fmt::format("{}, alpha {}", list, r.smoothquant->alpha);
      d.differs_from_paper = named != "norm" || r.smoothquant->alpha != 0.8;
    }
    rows.push_back(d);
  }
  {
    auto sym = [](const QuantSpec& s) { return !s.enabled() ? "off" : s.symmetric ? "symmetric" : "asymmetric"; };
    RecipeDefinition d{"symmetry", fmt::format("weights {}, activations {} ({})", sym(r.weights), sym(r.activations),
                                               r.activations.enabled() ? r.activations.to_string() : "off"),
                       "weights symmetric, activations asymmetric min-max",
                       "weights and activations symmetric (absmax / 127)"};
    d.differs_from_paper = (r.weights.enabled() && !r.weights.symmetric) || (r.activations.enabled() && r.activations.symmetric);
    rows.push_back(d);
  }
  {
    RecipeDefinition d{"weight granularity", r.weights.enabled() ? r.weights.to_string() : "off (float weights)",
                       "group-wise (group size not stated)",
                       "per-tensor in its INT8 models, per-channel in its fake-quantization evaluation"};
    d.differs_from_paper = r.weights.enabled() && r.weights.granularity != Granularity::kPerGroup;
    rows.push_back(d);
  }
  {
    RecipeDefinition d{"calibration data", "none (dynamic ranges, no SmoothQuant)", "WikiText-2 train split",
                       "the Pile validation set: 512 documents, up to 512 tokens each"};
    if (r.needs_calibration()) {
      d.ours = fmt::format("{}: {} windows of {} tokens (seed {}){}", r.calibration.windows.data, r.calibration.windows.samples, r.calibration.windows.seq_len,
                           r.calibration.windows.seed,
                           r.calibration.windows.data == "c4"          ? "; the shared data has no WikiText-2 train split"
                           : r.calibration.windows.data == "wikitext2" ? "; WikiText-2's test split, the text evaluated"
                                                               : "");
      // The named corpora are known not to be WikiText-2's train split; a path may be it.
      d.differs_from_paper = r.calibration.windows.data == "c4" || r.calibration.windows.data == "wikitext2";
    }
    rows.push_back(d);
  }
  rows.push_back({"static ranges observed with",
                  !static_ranges ? "— (no static ranges)"
                  : r.calibration.weights == CalibrationWeights::kFloat ? "float weights (after SmoothQuant's folding, if any)"
                                                                        : "quantized weights",
                  "not stated", "the smoothed float model"});
  rows.push_back({"BOS in calibration",
                  !r.needs_calibration() ? "— (no calibration)"
                  : r.calibration.include_bos
                      ? "first in every window and counted, without a prefix; behind a prefix the windows have none"
                      : "first in every window but not counted (as a prefix token), without a prefix; behind a prefix the windows have none",
                  "not stated", "the tokenizer's own (first for LLaMA and OPT), counted"});
  return rows;
}

}  // namespace cushioncache
