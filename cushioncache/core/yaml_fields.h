// Strict reading of YAML config files: every key must be known, every value of the
// expected type, and each error names the file, line and key. Internal to the library's
// sources (it exposes yaml-cpp, which consumers of the installed headers need not have).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "cushioncache/core/error.h"

namespace cushioncache {

// "file:line" of a node (yaml-cpp counts lines from 0).
std::string yaml_where(const std::string& file, const YAML::Node& node);

// Loads a YAML file; kNotFound / kInvalidConfig (with the line) on failure.
YAML::Node load_yaml_file(const std::string& path);

// A scalar as T; kInvalidConfig naming file:line and `key` (its dotted path) otherwise.
template <typename T>
T yaml_scalar(const YAML::Node& value, const std::string& file, const std::string& key) {
  const char* expected = std::is_same_v<T, bool> ? "a boolean" : std::is_integral_v<T> ? "an integer"
                       : std::is_floating_point_v<T> ? "a number" : "a string";
  if (!value.IsScalar()) throw_error(ErrorKind::kInvalidConfig, "{}: '{}' must be {}", yaml_where(file, value), key, expected);
  try {
    return value.as<T>();
  } catch (const YAML::Exception&) {
    throw_error(ErrorKind::kInvalidConfig, "{}: '{}' must be {}, got '{}'", yaml_where(file, value), key, expected, value.Scalar());
  }
}

// A sequence of scalars as T, each checked as yaml_scalar checks it.
template <typename T>
std::vector<T> yaml_list(const YAML::Node& value, const std::string& file, const std::string& key) {
  if (!value.IsSequence()) throw_error(ErrorKind::kInvalidConfig, "{}: '{}' must be a list", yaml_where(file, value), key);
  std::vector<T> out;
  for (const auto& item : value) out.push_back(yaml_scalar<T>(item, file, key + "[]"));
  return out;
}

// Range checks for YamlFields::optional(key, check, requirement).
template <typename T>
auto at_least(T minimum) {
  return [minimum](auto v) { return v >= minimum; };
}
template <typename T>
auto above(T minimum) {
  return [minimum](auto v) { return v > minimum; };
}

// A mapping read key by key; finish() rejects keys nobody asked for.
class YamlFields {
 public:
  YamlFields(const YAML::Node& node, std::string file, std::string path);

  bool has(const std::string& key) const;
  YAML::Node child(const std::string& key);  // marks the key as used; null node if absent
  std::string where(const std::string& key) const;

  template <typename T>
  std::optional<T> optional(const std::string& key) {
    YAML::Node value = child(key);
    if (!value || value.IsNull()) return std::nullopt;
    return yaml_scalar<T>(value, file_, qualified(key));
  }
  template <typename T>
  std::optional<std::vector<T>> list(const std::string& key) {
    YAML::Node value = child(key);
    if (!value || value.IsNull()) return std::nullopt;
    return yaml_list<T>(value, file_, qualified(key));
  }
  // optional<T>(key), which must also satisfy ok(value): kInvalidConfig naming file:line,
  // the key, the requirement ("in (0, 1]", ">= 1") and the value otherwise.
  template <typename T, typename Predicate>
  std::optional<T> optional(const std::string& key, Predicate&& ok, const char* requirement) {
    auto value = optional<T>(key);
    if (value && !ok(*value))
      throw_error(ErrorKind::kInvalidConfig, "{}: '{}' must be {}, got {}", where(key), qualified(key), requirement, node_[key].Scalar());
    return value;
  }
  template <typename T>
  T required(const std::string& key) {
    auto value = optional<T>(key);
    if (!value) throw_error(ErrorKind::kInvalidConfig, "{}: missing key '{}'", where(key), qualified(key));
    return *value;
  }

  // Throws kInvalidConfig naming the first unknown key and its line.
  void finish() const;

 private:
  std::string qualified(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  YAML::Node node_;
  std::string file_;
  std::string path_;
  std::set<std::string> used_;
};

}  // namespace cushioncache
