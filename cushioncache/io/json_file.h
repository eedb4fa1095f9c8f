// JSON files (config.json, tokenizer.json, index files) read with errors that name the
// file, and typed field access with errors that name the field.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"

namespace cushioncache {

// Throws kNotFound if missing, kCorruptInput (with the parser's byte position) if invalid.
nlohmann::json read_json_file(const std::filesystem::path& path);

// One JSON value per non-empty line; kCorruptInput names the file and line.
std::vector<nlohmann::json> read_jsonl_file(const std::filesystem::path& path);

namespace json_detail {
template <typename T>
const char* type_name() {
  if constexpr (std::is_same_v<T, bool>) return "a boolean";
  else if constexpr (std::is_integral_v<T>) return "an integer";
  else if constexpr (std::is_floating_point_v<T>) return "a number";
  else return "a string";
}

template <typename T>
bool holds(const nlohmann::json& v) {
  if constexpr (std::is_same_v<T, bool>) return v.is_boolean();
  else if constexpr (std::is_integral_v<T>) return v.is_number_integer();
  else if constexpr (std::is_floating_point_v<T>) return v.is_number();
  else return v.is_string();
}
}  // namespace json_detail

// Runs fn, which reads the structure of JSON that came from `path`: an Error gets the path
// as context, and a JSON access error (a missing key, a value of another type) becomes
// kCorruptInput naming the path, where with_context alone would call it internal.
template <typename Fn>
auto with_json_context(const std::string& path, Fn&& fn) -> decltype(fn()) {
  return with_context(path, [&]() -> decltype(fn()) {
    try {
      return fn();
    } catch (const nlohmann::json::exception& e) {
      throw_error(ErrorKind::kCorruptInput, "unexpected JSON structure: {}", e.what());
    }
  });
}

// obj[key] as T; kInvalidConfig naming the key if absent or of another type.
template <typename T>
T required_field(const nlohmann::json& obj, const std::string& key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) throw_error(ErrorKind::kInvalidConfig, "missing field '{}'", key);
  if (!json_detail::holds<T>(*it))
    throw_error(ErrorKind::kInvalidConfig, "field '{}' must be {}, got {}", key, json_detail::type_name<T>(), it->dump());
  return it->get<T>();
}

// obj[key] as T, or `fallback` when absent or null.
template <typename T>
T optional_field(const nlohmann::json& obj, const std::string& key, T fallback) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!json_detail::holds<T>(*it))
    throw_error(ErrorKind::kInvalidConfig, "field '{}' must be {}, got {}", key, json_detail::type_name<T>(), it->dump());
  return it->get<T>();
}

}  // namespace cushioncache
