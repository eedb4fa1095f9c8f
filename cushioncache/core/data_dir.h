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

// Where fetched pretrained models are cached (scripts/fetch_models.sh): $CC_MODEL_DIR, or
// ~/.cache/cushioncache/models. Models are never part of the repository or the data folder.
std::filesystem::path model_dir();

// Config files write "$data/..." for paths under data_dir() and "$models/..." for paths
// under model_dir(); other paths are returned as they are.
std::string expand_data_path(const std::string& path);

}  // namespace cushioncache
