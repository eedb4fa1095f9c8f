#include "cushioncache/io/json_file.h"

#include "cushioncache/core/files.h"

namespace cushioncache {

nlohmann::json read_json_file(const std::filesystem::path& path) {
  const std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw_error(ErrorKind::kCorruptInput, "{}: invalid JSON at byte {}: {}", path.string(), e.byte, e.what());
  }
}

}  // namespace cushioncache
