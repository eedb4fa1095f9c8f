#include "cushioncache/core/data_dir.h"

#include <cstdlib>

#ifndef CC_DEFAULT_DATA_DIR
#define CC_DEFAULT_DATA_DIR "../shared/data"
#endif

namespace cushioncache {

std::filesystem::path data_dir() {
  const char* env = std::getenv("CC_DATA_DIR");
  if (env != nullptr && *env != '\0') return std::filesystem::path(env);
  return std::filesystem::path(CC_DEFAULT_DATA_DIR);
}

std::filesystem::path model_dir() {
  const char* env = std::getenv("CC_MODEL_DIR");
  if (env != nullptr && *env != '\0') return std::filesystem::path(env);
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home != nullptr && *home != '\0' ? home : ".") / ".cache" / "cushioncache" / "models";
}

std::optional<std::filesystem::path> find_data(std::string_view relative) {
  std::filesystem::path path = data_dir() / std::filesystem::path(relative);
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return path;
  return std::nullopt;
}

std::string expand_data_path(const std::string& path) {
  if (path.rfind("$data/", 0) == 0) return (data_dir() / path.substr(6)).string();
  if (path.rfind("$models/", 0) == 0) return (model_dir() / path.substr(8)).string();
  return path;
}

}  // namespace cushioncache
