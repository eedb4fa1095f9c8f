// Hugging Face tokenizers: tokenizer.json with a BPE model (byte-level as in GPT-2 and
// LLaMA-3, or SentencePiece-style with byte fallback as in LLaMA-2 and Mistral), and
// GPT-2's original vocab.json + merges.txt. tokenizer_config.json, when given, decides
// BOS/EOS and add_bos_token / add_eos_token, as transformers does.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache {

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::filesystem::path& tokenizer_json,
                                             const std::optional<std::filesystem::path>& tokenizer_config);

// The same from already-parsed JSON: `tokenizer` as in tokenizer.json, `config` as in
// tokenizer_config.json (an empty object when there is none). Errors are prefixed with
// `source_description` (a path, or where the JSON was built from).
std::unique_ptr<Tokenizer> load_hf_tokenizer_from_json(const nlohmann::json& tokenizer, const nlohmann::json& config,
                                                       const std::string& source_description);

std::unique_ptr<Tokenizer> load_gpt2_bpe_tokenizer(const std::filesystem::path& vocab_json,
                                                   const std::filesystem::path& merges_txt,
                                                   const std::optional<std::filesystem::path>& tokenizer_config);

// A byte-level tokenizer with no merges: ids 0..255 are the bytes (in GPT-2's byte-to-
// character spelling), 256 is BOS "<s>" (added in front by default), 257 is EOS "</s>".
// Writes tokenizer.json and tokenizer_config.json into `folder` (atomically), in the
// format transformers' PreTrainedTokenizerFast loads. For models trained from scratch.
inline constexpr std::int64_t kByteTokenizerBos = 256;
inline constexpr std::int64_t kByteTokenizerEos = 257;
inline constexpr std::int64_t kByteTokenizerVocab = 258;
void write_byte_level_tokenizer(const std::filesystem::path& folder, std::int64_t model_max_length);

}  // namespace cushioncache
