// The llama2.c tokenizer file (tok*.bin: max token length, then per token a float score,
// an int32 length and the bytes), encoded exactly as llama2.c's run.c does: a dummy-prefix
// space, characters looked up whole or as byte tokens (id = byte + 3), then the
// highest-scoring adjacent merge, repeatedly.
#pragma once

#include <filesystem>
#include <memory>

#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache {

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::filesystem::path& path);

}  // namespace cushioncache
