#include "cushioncache/tokenizer/tokenizer.h"

#include "cushioncache/core/error.h"
#include "cushioncache/io/gguf.h"
#include "cushioncache/tokenizer/gguf_tokenizer.h"
#include "cushioncache/tokenizer/hf_tokenizer.h"
#include "cushioncache/tokenizer/llama2c_tokenizer.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace cushioncache {
namespace fs = std::filesystem;

BosPolicy parse_bos_policy(std::string_view name) {
  if (name == "auto") return BosPolicy::kAuto;
  if (name == "yes") return BosPolicy::kYes;
  if (name == "no") return BosPolicy::kNo;
  throw_error(ErrorKind::kInvalidArgument, "BOS policy '{}' is not one of auto|yes|no", name);
}

std::string describe_tokens(const Tokenizer& tokenizer, const std::vector<std::int64_t>& ids) {
  std::string out;
  for (const std::int64_t id : ids) {
    // Replace, not throw, on invalid UTF-8: a byte-fallback piece may hold a partial character.
    const std::string text = nlohmann::json(tokenizer.token_text(id)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out += fmt::format("{}{} {}", out.empty() ? "" : " ", id, text);
  }
  return out;
}

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path config = path / "tokenizer_config.json";
    if (fs::exists(path / "tokenizer.json")) return load_hf_tokenizer(path / "tokenizer.json", config);
    if (fs::exists(path / "vocab.json") && fs::exists(path / "merges.txt"))
      return load_gpt2_bpe_tokenizer(path / "vocab.json", path / "merges.txt", config);
    if (fs::exists(path / "encoder.json") && fs::exists(path / "vocab.bpe"))
      return load_gpt2_bpe_tokenizer(path / "encoder.json", path / "vocab.bpe", config);
    if (fs::exists(path / "tokenizer.model"))
      throw_error(ErrorKind::kUnsupported, "{}: only tokenizer.model (SentencePiece protobuf) found; "
                  "a tokenizer.json is needed (transformers writes one with save_pretrained)", path.string());
    throw_error(ErrorKind::kNotFound, "{}: no tokenizer.json, vocab.json + merges.txt, or encoder.json + vocab.bpe", path.string());
  }
  if (!fs::exists(path, ec)) throw_error(ErrorKind::kNotFound, "tokenizer {} does not exist", path.string());
  // By content, not by name: a GGUF model file carries its tokenizer whatever it is called.
  if (is_gguf_file(path)) return load_gguf_tokenizer(path);
  const std::string ext = path.extension().string();
  if (ext == ".json") return load_hf_tokenizer(path, path.parent_path() / "tokenizer_config.json");
  if (ext == ".bin") return load_llama2c_tokenizer(path);
  throw_error(ErrorKind::kUnsupported, "{}: unknown tokenizer file type (expected tokenizer.json, a folder, a GGUF file or a llama2.c .bin)",
              path.string());
}

at::Tensor encode_to_tensor(const Tokenizer& tokenizer, std::string_view text, BosPolicy bos) {
  const std::vector<std::int64_t> ids = tokenizer.encode(text, bos);
  return at::tensor(ids, at::kLong).reshape({1, static_cast<std::int64_t>(ids.size())});
}

}  // namespace cushioncache
