// Hugging Face tokenizers: tokenizer.json with a BPE model (byte-level as in GPT-2 and
// LLaMA-3, or SentencePiece-style with byte fallback as in LLaMA-2 and Mistral), and
// GPT-2's original vocab.json + merges.txt. tokenizer_config.json, when given, decides
// BOS/EOS and add_bos_token / add_eos_token, as transformers does.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>

#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache {

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::filesystem::path& tokenizer_json,
                                             const std::optional<std::filesystem::path>& tokenizer_config);

std::unique_ptr<Tokenizer> load_gpt2_bpe_tokenizer(const std::filesystem::path& vocab_json,
                                                   const std::filesystem::path& merges_txt,
                                                   const std::optional<std::filesystem::path>& tokenizer_config);

}  // namespace cushioncache
