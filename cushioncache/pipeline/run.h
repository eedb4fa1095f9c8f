// The main job, `cushioncache run --config FILE`: float evaluation -> the chosen recipe
// without a prefix -> baseline prefixes -> prefix search -> quantization-aware tuning ->
// ranges recalibrated with the prefix -> evaluation -> report.md, results.json, the
// inspect plots before/after and the resolved config, all in one output folder. The
// search and the tuning resume (resume = true) from their state files in that folder.
#pragma once

#include <filesystem>

#include "cushioncache/pipeline/run_config.h"

namespace cushioncache {

void run_pipeline(const RunConfig& config, const std::filesystem::path& out, bool resume);

}  // namespace cushioncache
