#include "cushioncache/quant/spec.h"

#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "cushioncache/core/error.h"
#include "cushioncache/core/strings.h"
#include "cushioncache/core/yaml_fields.h"
#include "cushioncache/quant/spec_yaml.h"

namespace cushioncache {
namespace {

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i)
    if (i == text.size() || text[i] == sep) {
      parts.emplace_back(text.substr(start, i - start));
      start = i + 1;
    }
  return parts;
}

double number_after(const std::string& token, std::size_t skip, std::string_view whole) {
  try {
    std::size_t used = 0;
    const double v = std::stod(token.substr(skip), &used);
    if (used == token.size() - skip) return v;
  } catch (const std::exception&) {
  }
  throw_error(ErrorKind::kInvalidConfig, "quantization spec '{}': '{}' needs a number after '{}'", whole, token, token.substr(0, skip));
}

// Bit widths and group sizes: a whole number that fits the integer it goes into
// (a huge or fractional one would otherwise be cast into garbage).
std::int64_t whole_number_after(const std::string& token, std::size_t skip, std::string_view whole) {
  const double v = number_after(token, skip, whole);
  if (!(v >= 0 && v <= 1e9) || v != std::floor(v))
    throw_error(ErrorKind::kInvalidConfig, "quantization spec '{}': '{}' needs a whole number up to 10^9 after '{}'", whole, token,
                token.substr(0, skip));
  return static_cast<std::int64_t>(v);
}

Granularity parse_granularity(const std::string& word, std::int64_t* group_size, std::string_view whole) {
  if (word == "tensor") return Granularity::kPerTensor;
  if (word == "token") return Granularity::kPerToken;
  if (word == "channel") return Granularity::kPerChannel;
  if (starts_with(word, "group")) {
    *group_size = whole_number_after(word, 5, whole);
    return Granularity::kPerGroup;
  }
  throw_error(ErrorKind::kInvalidConfig, "quantization spec '{}': 'per-{}' is not per-tensor, per-token, per-channel or per-group<N>",
              whole, word);
}

}  // namespace

const char* to_string(Granularity g) {
  switch (g) {
    case Granularity::kPerTensor: return "per-tensor";
    case Granularity::kPerToken: return "per-token";
    case Granularity::kPerChannel: return "per-channel";
    case Granularity::kPerGroup: return "per-group";
  }
  return "?";
}

void QuantSpec::validate() const {
  if (!enabled()) return;
  const char* what = role == QuantRole::kWeight ? "weight" : "activation";
  if (bits < 2 || bits > 8) throw_error(ErrorKind::kInvalidConfig, "{} bits = {}: must be 2..8, or 16 for off", what, bits);
  if (granularity == Granularity::kPerGroup && group_size <= 0)
    throw_error(ErrorKind::kInvalidConfig, "{} per-group quantization needs a positive group_size, got {}", what, group_size);
  if (role == QuantRole::kWeight && granularity == Granularity::kPerToken)
    throw_error(ErrorKind::kInvalidConfig, "weights have no tokens: use per-channel (one range per output row) instead of per-token");
  if (role == QuantRole::kActivation && granularity == Granularity::kPerToken && mode == RangeMode::kStatic)
    throw_error(ErrorKind::kInvalidConfig, "per-token activation ranges cannot be static (tokens differ at every input): use dynamic");
  if (estimator == RangeEstimator::kEma && !(ema_decay > 0 && ema_decay < 1))
    throw_error(ErrorKind::kInvalidConfig, "ema_decay = {} must be in (0, 1)", ema_decay);
  if (estimator == RangeEstimator::kPercentile && !(percentile > 50 && percentile <= 100))
    throw_error(ErrorKind::kInvalidConfig, "percentile = {} must be in (50, 100]", percentile);
}

std::string QuantSpec::to_string() const {
  if (!enabled()) return "off";
  std::string s = fmt::format("{}{}-{}", role == QuantRole::kWeight ? 'w' : 'a', bits, cushioncache::to_string(granularity));
  if (granularity == Granularity::kPerGroup) s += std::to_string(group_size);
  if (role == QuantRole::kActivation) s += mode == RangeMode::kStatic ? "-static" : "-dynamic";
  s += symmetric ? "-sym" : "-asym";
  if (role == QuantRole::kActivation && mode == RangeMode::kStatic) {
    switch (estimator) {
      case RangeEstimator::kMinMax: s += "-minmax"; break;
      case RangeEstimator::kEma: s += fmt::format("-ema{}", ema_decay); break;
      case RangeEstimator::kPercentile: s += fmt::format("-pct{}", percentile); break;
    }
  }
  return s;
}

QuantSpec parse_quant_spec(std::string_view text, QuantRole role) {
  QuantSpec spec;
  spec.role = role;
  spec.symmetric = role == QuantRole::kWeight;
  spec.mode = role == QuantRole::kWeight ? RangeMode::kStatic : RangeMode::kDynamic;
  if (text == "off" || text == "16" || text == "fp" || text == "float") return spec;
  const auto parts = split(text, '-');
  const std::string& head = parts[0];
  const char expected_letter = role == QuantRole::kWeight ? 'w' : 'a';
  if (head.size() < 2 || head[0] != expected_letter)
    throw_error(ErrorKind::kInvalidConfig, "quantization spec '{}' must start with '{}' and the bit width (e.g. {}8)", text,
                expected_letter, expected_letter);
  spec.bits = static_cast<int>(whole_number_after(head, 1, text));
  bool have_granularity = false;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    const std::string& t = parts[i];
    if (t == "per") {
      if (i + 1 >= parts.size()) throw_error(ErrorKind::kInvalidConfig, "quantization spec '{}': 'per' needs a granularity", text);
      spec.granularity = parse_granularity(parts[++i], &spec.group_size, text);
      have_granularity = true;
    } else if (t == "static" || t == "dynamic") {
      if (role == QuantRole::kWeight)
        throw_error(ErrorKind::kInvalidConfig, "quantization spec '{}': weights are quantized once; '{}' applies to activations", text, t);
      spec.mode = t == "static" ? RangeMode::kStatic : RangeMode::kDynamic;
    } else if (t == "sym" || t == "asym") {
      spec.symmetric = t == "sym";
    } else if (t == "minmax") {
      spec.estimator = RangeEstimator::kMinMax;
    } else if (starts_with(t, "ema")) {
      spec.estimator = RangeEstimator::kEma;
      if (t.size() > 3) spec.ema_decay = number_after(t, 3, text);
    } else if (starts_with(t, "pct")) {
      spec.estimator = RangeEstimator::kPercentile;
      spec.percentile = number_after(t, 3, text);
    } else {
      throw_error(ErrorKind::kInvalidConfig,
                  "quantization spec '{}': unknown part '{}' (expected per-<granularity>, static|dynamic, sym|asym, "
                  "minmax|ema<decay>|pct<percentile>)",
                  text, t);
    }
  }
  if (!have_granularity) throw_error(ErrorKind::kInvalidConfig, "quantization spec '{}' names no granularity (per-tensor, ...)", text);
  spec.validate();
  return spec;
}

QuantSpec quant_spec_from_yaml(const YAML::Node& node, QuantRole role, const std::string& file, const std::string& path) {
  if (node.IsScalar()) {
    try {
      return parse_quant_spec(node.Scalar(), role);
    } catch (const Error& e) {
      throw_error(e.kind(), "{}: '{}': {}", yaml_where(file, node), path, e.message());
    }
  }
  YamlFields f(node, file, path);
  QuantSpec spec = parse_quant_spec("off", role);
  spec.bits = f.required<int>("bits");
  if (auto g = f.optional<std::string>("granularity")) {
    const std::string word = g->rfind("per-", 0) == 0 ? g->substr(4) : *g;
    spec.granularity = parse_granularity(word, &spec.group_size, *g);
  }
  if (auto gs = f.optional<std::int64_t>("group_size", at_least(1), ">= 1")) spec.group_size = *gs;
  if (auto m = f.optional<std::string>("mode")) {
    if (*m != "static" && *m != "dynamic") throw_error(ErrorKind::kInvalidConfig, "{}: '{}.mode' must be static or dynamic", f.where("mode"), path);
    spec.mode = *m == "static" ? RangeMode::kStatic : RangeMode::kDynamic;
  }
  if (auto s = f.optional<bool>("symmetric")) spec.symmetric = *s;
  if (auto e = f.optional<std::string>("estimator")) {
    if (*e == "minmax") spec.estimator = RangeEstimator::kMinMax;
    else if (*e == "ema") spec.estimator = RangeEstimator::kEma;
    else if (*e == "percentile") spec.estimator = RangeEstimator::kPercentile;
    else throw_error(ErrorKind::kInvalidConfig, "{}: '{}.estimator' must be minmax, ema or percentile", f.where("estimator"), path);
  }
  if (auto d = f.optional<double>("ema_decay")) spec.ema_decay = *d;
  if (auto p = f.optional<double>("percentile")) spec.percentile = *p;
  f.finish();
  try {
    spec.validate();
  } catch (const Error& e) {
    throw_error(e.kind(), "{}: '{}': {}", yaml_where(file, node), path, e.message());
  }
  return spec;
}

}  // namespace cushioncache
