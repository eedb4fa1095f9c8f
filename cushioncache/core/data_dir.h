// Where the shared real data (models, tokenizers, text, tasks) lives: $CC_DATA_DIR, or
// the default baked in at configure time (../shared/data beside the source tree).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace cushioncache {

std::filesystem::path data_dir();

// data_dir() / relative if that file or folder exists, std::nullopt otherwise.
std::optional<std::filesystem::path> find_data(std::string_view relative);

// Config files write "$data/..." for paths under data_dir(); other paths are returned as
// they are.
std::string expand_data_path(const std::string& path);

}  // namespace cushioncache
