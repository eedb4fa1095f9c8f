// Reading a QuantSpec from a YAML config (recipes, run configs, training configs).
// Internal to the library's sources, like core/yaml_fields.h: it exposes yaml-cpp, a
// private dependency, so it is not installed.
#pragma once

#include <string>

#include <yaml-cpp/yaml.h>

#include "cushioncache/quant/spec.h"

namespace cushioncache {

// A YAML string (the short form) or mapping {bits, granularity, group_size, mode,
// symmetric, estimator, ema_decay, percentile}; errors name file, line and key.
QuantSpec quant_spec_from_yaml(const YAML::Node& node, QuantRole role, const std::string& file, const std::string& path);

}  // namespace cushioncache
