// The tokenizer interface every model-facing component uses, and the loader that picks
// the implementation from what is on disk.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/core/Tensor.h>

namespace cushioncache {

// Whether encode() puts BOS in front. kAuto does what the tokenizer's own files say
// (tokenizer_config.json's add_bos_token, else tokenizer.json's post-processor). Text
// that follows a cached prefix is encoded with kNo: a second BOS recreates the sink.
enum class BosPolicy { kAuto, kYes, kNo };
BosPolicy parse_bos_policy(std::string_view name);  // "auto" | "yes" | "no"

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::vector<std::int64_t> encode(std::string_view text, BosPolicy bos = BosPolicy::kAuto) const = 0;
  // Special tokens (BOS, EOS, control tokens) are dropped when skip_special is true.
  virtual std::string decode(const std::vector<std::int64_t>& ids, bool skip_special = true) const = 0;

  virtual std::int64_t vocab_size() const = 0;
  virtual std::optional<std::int64_t> bos_id() const = 0;
  virtual std::optional<std::int64_t> eos_id() const = 0;
  // Control tokens (BOS/EOS/UNK, chat markers): never ordinary text.
  virtual bool is_special(std::int64_t id) const = 0;
  // The vocabulary entry itself (e.g. "▁the", "Ġthe", "<0x0A>"); kNotFound if out of range.
  virtual std::string token_text(std::int64_t id) const = 0;
  // A short description for logs ("tokenizer.json BPE (byte-level), 128256 tokens").
  virtual std::string describe() const = 0;
};

// Token ids with their vocabulary entries, for logs and reports: `1 "<s>" 13 "<0x0A>"`.
// Decoding would hide what the prefix is made of (BOS decodes to nothing or to "\n<s>\n").
std::string describe_tokens(const Tokenizer& tokenizer, const std::vector<std::int64_t>& ids);

// Loads from: a folder holding tokenizer.json (+ tokenizer_config.json), or vocab.json +
// merges.txt, or encoder.json + vocab.bpe (GPT-2's files); a tokenizer.json file; a GGUF
// file (recognised by its magic; gguf_tokenizer.h); or a llama2.c tokenizer .bin. Errors
// name the file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path);

// The token ids of `text` as a batch of one, [1, n] int64 on the CPU: what
// CausalLM::forward takes.
at::Tensor encode_to_tensor(const Tokenizer& tokenizer, std::string_view text, BosPolicy bos = BosPolicy::kAuto);

}  // namespace cushioncache
