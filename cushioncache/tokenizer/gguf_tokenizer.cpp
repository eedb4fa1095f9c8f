#include "cushioncache/tokenizer/gguf_tokenizer.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/core/files.h"
#include "cushioncache/core/log.h"
#include "cushioncache/io/gguf.h"
#include "cushioncache/tokenizer/hf_tokenizer.h"
#include "cushioncache/tokenizer/utf8.h"

namespace cushioncache {
namespace {
using nlohmann::json;

// llama.cpp's llama_token_type: what each vocabulary entry is.
enum TokenType : std::int64_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

const char* kMetaspace = "\xE2\x96\x81";  // U+2581 "▁", SentencePiece's space

// ---------------------------------------------------------------------------------------
// Pre-tokenizers: the regexes llama.cpp's llm_tokenizer_bpe applies for each
// tokenizer.ggml.pre (src/llama-vocab.cpp). Each regex splits every piece left by the
// previous ones into matches and the text between them, which is Hugging Face's Split
// with behavior Isolated; the pieces are then mapped to GPT-2's byte alphabet.
// Non-ASCII characters are written as \x{...}: several of them (U+1F7D, U+1FBE, U+2126,
// U+212A, ...) have canonical equivalents that an editor or a normalizing copy would
// silently substitute.
const char* kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
const char* kLlama3Regex =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* kQwen2Regex =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek's letters: Unicode's cased letters (Lu, Ll, Lt) as of its release.
const char* kDeepseekLetters =
    R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373})"
    R"(\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481})"
    R"(\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF})"
    R"(\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D})"
    R"(\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4})"
    R"(\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107})"
    R"(\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139})"
    R"(\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2})"
    R"(\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF})"
    R"(\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3})"
    R"(\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
const char* kDeepseekCjk = R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
const char* kBloomRegex = R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{964}\x{6D4}\x{60C})]+)";

struct PreTokenizerRule {
  std::vector<std::string> names;  // tokenizer.ggml.pre values llama.cpp maps to these regexes
  std::vector<std::string> regexes;
  bool ignore_merges = false;  // a piece that is already a token is not merged (LLaMA-3)
  bool add_bos = false;        // llama.cpp's add_bos_token when the metadata does not say
};

const std::vector<PreTokenizerRule>& pre_tokenizer_rules() {
  static const std::vector<PreTokenizerRule> rules = {
      {{"default"}, {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2Regex, R"(\p{N}+)", "[0-9][0-9][0-9]"}},
      {{"gpt-2", "phi-2", "mpt", "olmo", "jais", "exaone4"}, {kGpt2Regex}},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"}, {R"(\p{N})", kGpt2Regex}},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"}, {kLlama3Regex}, true, true},
      {{"dbrx", "smaug-bpe"}, {kLlama3Regex}},
      {{"qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"}, {kQwen2Regex}},
      {{"falcon"}, {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2Regex, "[0-9][0-9][0-9]"}},
      {{"deepseek-llm"},
       {"[\r\n]", kDeepseekLetters, R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)",
        R"(\s+$)", kDeepseekCjk, R"(\p{N}+)"}},
      {{"deepseek-coder"}, {"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepseekCjk, R"(\p{N})"}},
      {{"poro-chat", "bloom", "gpt3-finnish"}, {kBloomRegex}},
      {{"viking"}, {kBloomRegex, R"(\p{N})"}},
  };
  return rules;
}

const PreTokenizerRule* find_pre_tokenizer(const std::string& name) {
  for (const auto& rule : pre_tokenizer_rules())
    if (std::find(rule.names.begin(), rule.names.end(), name) != rule.names.end()) return &rule;
  return nullptr;
}

// ---------------------------------------------------------------------------------------
// Typed access to the tokenizer's metadata arrays; errors name the file and the key.
class Metadata {
 public:
  explicit Metadata(const GgufFile& gguf) : gguf_(gguf), md_(gguf.metadata()) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw_error(ErrorKind::kCorruptInput, "{}: metadata key '{}': {}", gguf_.path().string(), key, what);
  }

  const json* find(const std::string& key) const {
    auto it = md_.find(key);
    return it == md_.end() ? nullptr : &*it;
  }

  // nullopt if the key is absent.
  template <typename T>
  std::optional<std::vector<T>> array(const std::string& key) const {
    const json* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_array()) fail(key, "is not an array");
    std::vector<T> out;
    out.reserve(v->size());
    for (std::size_t i = 0; i < v->size(); ++i) {
      const json& e = (*v)[i];
      if constexpr (std::is_same_v<T, std::string>) {
        if (!e.is_string()) fail(key, fmt::format("entry {} is not a string", i));
        out.push_back(e.get<std::string>());
      } else if constexpr (std::is_floating_point_v<T>) {
        if (!e.is_number()) fail(key, fmt::format("entry {} is not a number", i));
        out.push_back(e.get<T>());
      } else {
        if (!e.is_number_integer()) fail(key, fmt::format("entry {} is not an integer", i));
        out.push_back(e.get<T>());
      }
    }
    return out;
  }

  // One entry per token, or nullopt if absent.
  template <typename T>
  std::optional<std::vector<T>> per_token(const std::string& key, std::size_t n_tokens) const {
    auto values = array<T>(key);
    if (values && values->size() != n_tokens)
      fail(key, fmt::format("has {} entries but tokenizer.ggml.tokens has {}", values->size(), n_tokens));
    return values;
  }

  // A token id, checked against the vocabulary; `fallback` when the key is absent (and
  // the fallback is in the vocabulary).
  std::optional<std::int64_t> token_id(const std::string& key, std::size_t n_tokens,
                                       std::optional<std::int64_t> fallback = std::nullopt) const {
    const std::optional<std::int64_t> id = gguf_.optional_int(key);
    if (!id) return fallback && *fallback < static_cast<std::int64_t>(n_tokens) ? fallback : std::nullopt;
    if (*id < 0 || *id >= static_cast<std::int64_t>(n_tokens))
      fail(key, fmt::format("token id {} is outside the vocabulary of {} tokens", *id, n_tokens));
    return id;
  }

 private:
  const GgufFile& gguf_;
  const json& md_;
};

// Token text -> id. When a text occurs twice the later id wins, as in llama.cpp's
// token_to_id; the earlier id is left out of the rebuilt vocabulary (a tokenizer.json
// vocabulary maps each text to one id).
std::unordered_map<std::string, std::int64_t> index_tokens(const std::vector<std::string>& tokens) {
  std::unordered_map<std::string, std::int64_t> index;
  index.reserve(tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i) index[tokens[i]] = static_cast<std::int64_t>(i);
  if (index.size() != tokens.size())
    log::warn("GGUF vocabulary: {} token texts occur more than once; the last id of each is used for encoding",
              tokens.size() - index.size());
  return index;
}

json vocab_object(const std::unordered_map<std::string, std::int64_t>& index) {
  json vocab = json::object();
  for (const auto& [token, id] : index) vocab[token] = id;
  return vocab;
}

// BPE merges "left right" as stored by llama.cpp's converter: split at the first space
// after the first byte (a token cannot be empty), both halves and their concatenation
// in the vocabulary.
json gpt2_merges(const Metadata& md, const std::unordered_map<std::string, std::int64_t>& index) {
  const std::string key = "tokenizer.ggml.merges";
  auto merges = md.array<std::string>(key);
  if (!merges) md.fail(key, "is missing (a \"gpt2\" tokenizer needs its BPE merges)");
  json out = json::array();
  for (std::size_t i = 0; i < merges->size(); ++i) {
    const std::string& merge = (*merges)[i];
    const std::size_t space = merge.find(' ', 1);
    if (space == std::string::npos) md.fail(key, fmt::format("merge {} '{}' is not two tokens separated by a space", i, merge));
    std::string left = merge.substr(0, space), right = merge.substr(space + 1);
    for (const std::string* part : {&left, &right})
      if (!index.count(*part))
        md.fail(key, fmt::format("merge {} '{}' names '{}', which is not in tokenizer.ggml.tokens", i, merge, *part));
    if (!index.count(left + right))
      md.fail(key, fmt::format("merge {} '{}' makes '{}', which is not in tokenizer.ggml.tokens", i, merge, left + right));
    out.push_back(json::array({std::move(left), std::move(right)}));
  }
  return out;
}

// SentencePiece BPE merges the adjacent pair whose concatenation has the highest score,
// the leftmost pair among equals. As ranked merges (what tokenizer.json holds; the same
// rule as transformers' generate_merges): every split of every piece into two pieces of
// the vocabulary, ordered by the merged piece's score, then by the longer left half,
// then the longer right half. The length order matters for pieces of equal score (the
// runs of "▁" in LLaMA's vocabulary all score -1e9): growing a run from its left end
// first is what SentencePiece's leftmost-first rule does. Like llama.cpp and
// transformers, every piece can be a merge result, control and byte pieces included.
json spm_merges(const std::vector<std::string>& tokens, const std::vector<double>& scores,
                const std::unordered_map<std::string, std::int64_t>& index) {
  struct Candidate {
    double score;
    std::size_t left_chars, right_chars;
    std::int64_t merged, left, right;
  };
  std::vector<Candidate> candidates;
  for (std::size_t id = 0; id < tokens.size(); ++id) {
    const std::string& token = tokens[id];
    const std::size_t chars = utf8::split_chars(utf8::repair(token)).size();
    std::size_t left_chars = 0;
    for (std::size_t cut = 0; cut < token.size();) {
      const std::size_t len = utf8::sequence_length(token, cut);
      cut += len == 0 ? 1 : len;  // an invalid byte counts as one character
      ++left_chars;
      if (cut >= token.size()) break;
      auto l = index.find(token.substr(0, cut));
      if (l == index.end()) continue;
      auto r = index.find(token.substr(cut));
      if (r == index.end()) continue;
      candidates.push_back({scores[id], left_chars, chars - left_chars, static_cast<std::int64_t>(id), l->second, r->second});
    }
  }
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.left_chars != b.left_chars) return a.left_chars > b.left_chars;
    if (a.right_chars != b.right_chars) return a.right_chars > b.right_chars;
    if (a.merged != b.merged) return a.merged < b.merged;
    if (a.left != b.left) return a.left < b.left;
    return a.right < b.right;
  });
  json out = json::array();
  for (const auto& c : candidates) out.push_back(json::array({tokens[c.left], tokens[c.right]}));
  return out;
}

json split_isolated(const std::string& regex) {
  return {{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}};
}

json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

// BOS and/or EOS around the text, as transformers' LLaMA converter writes it.
json template_post_processor(const std::vector<std::string>& tokens, std::optional<std::int64_t> bos,
                             std::optional<std::int64_t> eos) {
  json specials = json::object();
  auto special = [&](std::int64_t id, int type_id) {
    specials[tokens[id]] = {{"id", tokens[id]}, {"ids", json::array({id})}, {"tokens", json::array({tokens[id]})}};
    return json{{"SpecialToken", {{"id", tokens[id]}, {"type_id", type_id}}}};
  };
  auto around = [&](const char* sequence, int type_id) {
    json items = json::array();
    if (bos) items.push_back(special(*bos, type_id));
    items.push_back({{"Sequence", {{"id", sequence}, {"type_id", type_id}}}});
    if (eos) items.push_back(special(*eos, type_id));
    return items;
  };
  json single = around("A", 0), pair = around("A", 0);
  for (auto& item : around("B", 1)) pair.push_back(std::move(item));
  return {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}};
}

}  // namespace

GgufTokenizerFiles gguf_tokenizer_files(const GgufFile& gguf) {
  const Metadata md(gguf);
  if (!gguf.has("tokenizer.ggml.model")) md.fail("tokenizer.ggml.model", "is missing: the file holds no tokenizer");
  const std::string model = gguf.required_string("tokenizer.ggml.model");
  if (model != "gpt2" && model != "llama")
    throw_error(ErrorKind::kUnsupported,
                "{}: metadata key 'tokenizer.ggml.model' is '{}'; only \"gpt2\" (byte-level BPE) and \"llama\" "
                "(SentencePiece BPE) tokenizers are supported",
                gguf.path().string(), model);
  const bool spm = model == "llama";

  auto tokens_or_none = md.array<std::string>("tokenizer.ggml.tokens");
  if (!tokens_or_none || tokens_or_none->empty()) md.fail("tokenizer.ggml.tokens", "is missing or empty: the file has no vocabulary");
  std::vector<std::string> tokens = std::move(*tokens_or_none);
  const std::size_t n = tokens.size();
  // An empty text cannot be a vocabulary entry; llama.cpp renames it the same way.
  for (std::size_t i = 0; i < n; ++i)
    if (tokens[i].empty()) tokens[i] = fmt::format("[EMPTY_{}]", i);
  const std::vector<std::int64_t> types =
      md.per_token<std::int64_t>("tokenizer.ggml.token_type", n).value_or(std::vector<std::int64_t>(n, kNormal));
  const auto scores = md.per_token<double>("tokenizer.ggml.scores", n);
  if (spm && !scores) md.fail("tokenizer.ggml.scores", "is missing (a \"llama\" tokenizer merges by score)");
  const auto index = index_tokens(tokens);

  // The special tokens. A SentencePiece vocabulary without the keys uses LLaMA's ids, as
  // llama.cpp does; llama.cpp's BPE default (id 11, Falcon's) is not carried over.
  const auto bos = md.token_id("tokenizer.ggml.bos_token_id", n, spm ? std::optional<std::int64_t>(1) : std::nullopt);
  const auto eos = md.token_id("tokenizer.ggml.eos_token_id", n, spm ? std::optional<std::int64_t>(2) : std::nullopt);
  const auto unk = md.token_id("tokenizer.ggml.unknown_token_id", n, spm ? std::optional<std::int64_t>(0) : std::nullopt);
  const auto pad = md.token_id("tokenizer.ggml.padding_token_id", n);

  json tokenizer = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}};
  bool add_bos_default = false;
  if (spm) {
    // SentencePiece: spaces become "▁" and, unless the file says otherwise, a "▁" goes in
    // front of every stretch of text (llama.cpp adds it at the start and after each
    // special token: Prepend on each segment between added tokens does the same).
    const bool add_space_prefix = gguf.optional_bool("tokenizer.ggml.add_space_prefix").value_or(true);
    json normalizers = json::array();
    if (add_space_prefix) normalizers.push_back({{"type", "Prepend"}, {"prepend", kMetaspace}});
    normalizers.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kMetaspace}});
    tokenizer["normalizer"] = {{"type", "Sequence"}, {"normalizers", normalizers}};
    tokenizer["pre_tokenizer"] = nullptr;
    json decoders = json::array({json{{"type", "Replace"}, {"pattern", {{"String", kMetaspace}}}, {"content", " "}},
                                 json{{"type", "ByteFallback"}}, json{{"type", "Fuse"}}});
    if (add_space_prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    tokenizer["decoder"] = {{"type", "Sequence"}, {"decoders", decoders}};
    tokenizer["model"] = {{"type", "BPE"},
                          {"dropout", nullptr},
                          {"unk_token", unk ? json(tokens[*unk]) : json(nullptr)},
                          {"continuing_subword_prefix", nullptr},
                          {"end_of_word_suffix", nullptr},
                          {"fuse_unk", true},
                          {"byte_fallback", true},
                          {"ignore_merges", false},
                          {"vocab", vocab_object(index)},
                          {"merges", spm_merges(tokens, *scores, index)}};
    add_bos_default = true;
  } else {
    std::string pre = gguf.has("tokenizer.ggml.pre") ? gguf.required_string("tokenizer.ggml.pre") : "";
    if (pre.empty()) {
      log::warn("{}: no tokenizer.ggml.pre; using llama.cpp's 'default' pre-tokenizer, which may not be the model's",
                gguf.path().string());
      pre = "default";
    }
    const PreTokenizerRule* rule = find_pre_tokenizer(pre);
    if (rule == nullptr) {
      std::string known;
      for (const auto& r : pre_tokenizer_rules())
        for (const auto& name : r.names) known += (known.empty() ? "" : ", ") + name;
      throw_error(ErrorKind::kUnsupported, "{}: metadata key 'tokenizer.ggml.pre': pre-tokenizer '{}' is not supported (known: {})",
                  gguf.path().string(), pre, known);
    }
    json steps = json::array();
    for (const auto& regex : rule->regexes) steps.push_back(split_isolated(regex));
    steps.push_back(byte_level(false));
    tokenizer["normalizer"] = nullptr;
    tokenizer["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", steps}};
    tokenizer["decoder"] = byte_level(true);
    tokenizer["model"] = {{"type", "BPE"},
                          {"dropout", nullptr},
                          {"unk_token", nullptr},  // every byte has a token
                          {"continuing_subword_prefix", nullptr},
                          {"end_of_word_suffix", nullptr},
                          {"fuse_unk", false},
                          {"byte_fallback", false},
                          {"ignore_merges", rule->ignore_merges},
                          {"vocab", vocab_object(index)},
                          {"merges", gpt2_merges(md, index)}};
    add_bos_default = rule->add_bos;
  }

  // Control and unknown tokens are special; user-defined ones are ordinary added tokens.
  // Both are matched in the raw text before anything else, as llama.cpp partitions it.
  json added = json::array();
  for (std::size_t id = 0; id < n; ++id) {
    if (types[id] != kControl && types[id] != kUnknown && types[id] != kUserDefined) continue;
    added.push_back({{"id", id},
                     {"content", tokens[id]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", types[id] != kUserDefined}});
  }
  tokenizer["added_tokens"] = added;

  const bool add_bos = gguf.optional_bool("tokenizer.ggml.add_bos_token").value_or(add_bos_default && bos.has_value());
  const bool add_eos = gguf.optional_bool("tokenizer.ggml.add_eos_token").value_or(false);
  if (add_bos && !bos) md.fail("tokenizer.ggml.add_bos_token", "is true but tokenizer.ggml.bos_token_id is not set");
  if (add_eos && !eos) md.fail("tokenizer.ggml.add_eos_token", "is true but tokenizer.ggml.eos_token_id is not set");
  tokenizer["post_processor"] = add_bos || add_eos
                                    ? template_post_processor(tokens, add_bos ? bos : std::nullopt, add_eos ? eos : std::nullopt)
                                    : json(nullptr);

  json config = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                 {"clean_up_tokenization_spaces", false},
                 {"add_bos_token", add_bos},
                 {"add_eos_token", add_eos}};
  if (bos) config["bos_token"] = tokens[*bos];
  if (eos) config["eos_token"] = tokens[*eos];
  if (unk) config["unk_token"] = tokens[*unk];
  if (pad) config["pad_token"] = tokens[*pad];
  if (const json* chat = md.find("tokenizer.chat_template"); chat && chat->is_string()) config["chat_template"] = *chat;
  return {std::move(tokenizer), std::move(config)};
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::filesystem::path& path) {
  const GgufFile gguf = GgufFile::open(path);
  const GgufTokenizerFiles files = gguf_tokenizer_files(gguf);
  return load_hf_tokenizer_from_json(files.tokenizer, files.config, path.string() + " (tokenizer.json rebuilt from GGUF metadata)");
}

void write_tokenizer_files(const GgufTokenizerFiles& files, const std::filesystem::path& folder) {
  constexpr auto replace = nlohmann::json::error_handler_t::replace;
  // Both texts are made before either file is written: a failure leaves neither.
  const std::string tokenizer = files.tokenizer.dump(1, ' ', false, replace) + "\n";
  const std::string config = files.config.dump(2, ' ', false, replace) + "\n";
  write_file_atomically(folder / "tokenizer.json", [&](std::ostream& out) { out << tokenizer; });
  write_file_atomically(folder / "tokenizer_config.json", [&](std::ostream& out) { out << config; });
}

}  // namespace cushioncache
