// Tokenizers stored in a GGUF file's metadata (tokenizer.ggml.*). They are not run by an
// engine of their own: the metadata is rebuilt into the equivalent Hugging Face
// tokenizer.json + tokenizer_config.json, which the tokenizer.json engine
// (hf_tokenizer.h) runs and which `convert` writes beside a converted GGUF model.
//
// tokenizer.ggml.model "gpt2": byte-level BPE from tokens + merges, split by the
// regexes llama.cpp selects for tokenizer.ggml.pre. "llama": SentencePiece BPE from
// tokens + scores (merges derived from the scores), byte fallback, "▁" for spaces and a
// dummy-prefix space. Control and unknown tokens become special added tokens,
// user-defined ones plain added tokens. docs/formats.md lists the `pre` values.
#pragma once

#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache {

class GgufFile;

struct GgufTokenizerFiles {
  nlohmann::json tokenizer;  // tokenizer.json
  nlohmann::json config;     // tokenizer_config.json: special tokens, add_bos_token, add_eos_token
};

// kCorruptInput naming the file and the metadata key for a missing or inconsistent
// vocabulary (no tokens, scores/token_type of another length, a merge naming a missing
// token, a special token id out of range); kUnsupported for a tokenizer model or
// pre-tokenizer this library does not know.
GgufTokenizerFiles gguf_tokenizer_files(const GgufFile& gguf);

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::filesystem::path& path);

// Writes tokenizer.json and tokenizer_config.json into `folder` (atomically; it must
// exist), as `convert` does beside a converted GGUF model: files transformers'
// PreTrainedTokenizerFast and this library load. Invalid UTF-8 in a token is written as U+FFFD.
void write_tokenizer_files(const GgufTokenizerFiles& files, const std::filesystem::path& folder);

}  // namespace cushioncache
