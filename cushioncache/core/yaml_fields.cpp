#include "cushioncache/core/yaml_fields.h"

#include <filesystem>

#include <fmt/format.h>

namespace cushioncache {

std::string yaml_where(const std::string& file, const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return mark.line >= 0 ? fmt::format("{}:{}", file, mark.line + 1) : file;
}

YAML::Node load_yaml_file(const std::string& path) {
  if (!std::filesystem::exists(path)) throw_error(ErrorKind::kNotFound, "{} does not exist", path);
  try {
    return YAML::LoadFile(path);
  } catch (const YAML::ParserException& e) {
    throw_error(ErrorKind::kInvalidConfig, "{}:{}: invalid YAML: {}", path, e.mark.line + 1, e.msg);
  } catch (const YAML::Exception& e) {
    throw_error(ErrorKind::kInvalidConfig, "{}: {}", path, e.what());
  }
}

YamlFields::YamlFields(const YAML::Node& node, std::string file, std::string path)
    : node_(node), file_(std::move(file)), path_(std::move(path)) {
  if (!node_.IsMap())
    throw_error(ErrorKind::kInvalidConfig, "{}: '{}' must be a mapping of keys to values", yaml_where(file_, node_),
                path_.empty() ? "the document" : path_);
}

bool YamlFields::has(const std::string& key) const { return static_cast<bool>(node_[key]); }

YAML::Node YamlFields::child(const std::string& key) {
  used_.insert(key);
  return node_[key];
}

std::string YamlFields::where(const std::string& key) const {
  const YAML::Node value = node_[key];
  return yaml_where(file_, value ? value : node_);
}

void YamlFields::finish() const {
  for (const auto& entry : node_) {
    const auto key = yaml_scalar<std::string>(entry.first, file_, qualified("<key>"));
    if (used_.count(key) == 0) {
      std::string known;
      for (const auto& k : used_) known += (known.empty() ? "" : ", ") + k;
      throw_error(ErrorKind::kInvalidConfig, "{}: unknown key '{}'{}", yaml_where(file_, entry.first), qualified(key),
                  known.empty() ? "" : fmt::format(" (known here: {})", known));
    }
  }
}

}  // namespace cushioncache
