#include "cushioncache/io/json_file.h"

#include "cushioncache/core/files.h"

namespace cushioncache {

nlohmann::json read_json_file(const std::filesystem::path& path) {
  const std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw_error(ErrorKind::kCorruptInput, "{}: invalid JSON at byte {}: {}", path.string(), e.byte, e.what());
  } catch (const nlohmann::json::exception& e) {  // e.g. a number too large for any JSON type
    throw_error(ErrorKind::kCorruptInput, "{}: invalid JSON: {}", path.string(), e.what());
  }
}

std::vector<nlohmann::json> read_jsonl_file(const std::filesystem::path& path) {
  const std::string text = read_file(path);
  std::vector<nlohmann::json> rows;
  std::size_t line_no = 0;
  for (std::size_t start = 0; start < text.size();) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++line_no;
    const std::string_view line(text.data() + start, end - start);
    if (line.find_first_not_of(" \t\r") != std::string_view::npos) {
      try {
        rows.push_back(nlohmann::json::parse(line));
      } catch (const nlohmann::json::exception& e) {
        throw_error(ErrorKind::kCorruptInput, "{}:{}: invalid JSON: {}", path.string(), line_no, e.what());
      }
    }
    start = end + 1;
  }
  return rows;
}

}  // namespace cushioncache
