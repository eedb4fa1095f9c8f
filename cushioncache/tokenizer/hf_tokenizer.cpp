#include "cushioncache/tokenizer/hf_tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <fstream>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/core/files.h"
#include "cushioncache/io/json_file.h"
#include "cushioncache/tokenizer/bpe.h"
#include "cushioncache/tokenizer/regex.h"
#include "cushioncache/tokenizer/utf8.h"

namespace cushioncache {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// ---------------------------------------------------------------------------------------
// GPT-2's reversible byte <-> printable-character map used by byte-level BPE.
struct ByteLevelTable {
  std::array<std::string, 256> byte_to_char;
  std::unordered_map<std::uint32_t, unsigned char> char_to_byte;
};

const ByteLevelTable& byte_level_table() {
  static const ByteLevelTable table = [] {
    ByteLevelTable t;
    std::vector<int> printable;
    for (int b = '!'; b <= '~'; ++b) printable.push_back(b);
    for (int b = 0xA1; b <= 0xAC; ++b) printable.push_back(b);
    for (int b = 0xAE; b <= 0xFF; ++b) printable.push_back(b);
    std::array<bool, 256> is_printable{};
    for (int b : printable) is_printable[b] = true;
    std::uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const std::uint32_t cp = is_printable[b] ? static_cast<std::uint32_t>(b) : next++;
      t.byte_to_char[b] = utf8::encode(cp);
      t.char_to_byte[cp] = static_cast<unsigned char>(b);
    }
    return t;
  }();
  return table;
}

std::string bytes_to_byte_level(std::string_view text) {
  const auto& table = byte_level_table();
  std::string out;
  out.reserve(text.size() * 2);
  for (char c : text) out += table.byte_to_char[static_cast<unsigned char>(c)];
  return out;
}

const char* kGpt2SplitPattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* kMetaspace = "\xE2\x96\x81";  // U+2581 "▁"

std::string regex_escape(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// {"String": "x"} or {"Regex": "..."} as a PCRE2 pattern.
std::string pattern_of(const json& pattern) {
  if (pattern.is_object()) {
    if (pattern.contains("String")) return regex_escape(required_field<std::string>(pattern, "String"));
    if (pattern.contains("Regex")) return required_field<std::string>(pattern, "Regex");
  }
  throw_error(ErrorKind::kCorruptInput, "pattern {} is neither {{\"String\": ...}} nor {{\"Regex\": ...}}", pattern.dump());
}

std::string replace_all(std::string_view text, const Regex& regex, std::string_view content) {
  std::string out;
  std::size_t last = 0;
  for (const auto& [b, e] : regex.find_all(text)) {
    out.append(text.substr(last, b - last));
    out.append(content);
    last = e;
  }
  out.append(text.substr(last));
  return out;
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// ---------------------------------------------------------------------------------------
// Normalizers: whole-segment string rewrites.
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void apply(std::string& text) const = 0;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void apply(std::string& text) const override {
    for (const auto& s : steps_) s->apply(text);
  }
 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void apply(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }
 private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(const std::string& pattern, std::string content) : regex_(pattern), content_(std::move(content)) {}
  void apply(std::string& text) const override { text = replace_all(text, regex_, content_); }
 private:
  Regex regex_;
  std::string content_;
};

// Unicode normal forms and lowercasing leave ASCII text unchanged (NFC/NFKC) or change it
// trivially (lowercase); other text would need Unicode tables this build does not carry,
// so it is refused rather than silently mis-tokenized.
class AsciiOnlyNormalizer : public Normalizer {
 public:
  AsciiOnlyNormalizer(std::string type, bool lowercase) : type_(std::move(type)), lowercase_(lowercase) {}
  void apply(std::string& text) const override {
    if (!is_ascii(text))
      throw_error(ErrorKind::kUnsupported, "normalizer {} is only implemented for ASCII text; this input has non-ASCII characters",
                  type_);
    if (lowercase_)
      for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
 private:
  std::string type_;
  bool lowercase_;
};

std::unique_ptr<Normalizer> make_normalizer(const json& spec) {
  if (spec.is_null()) return nullptr;
  const auto type = required_field<std::string>(spec, "type");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const auto& s : spec.at("normalizers")) steps.push_back(make_normalizer(s));
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(required_field<std::string>(spec, "prepend"));
  if (type == "Replace")
    return std::make_unique<ReplaceNormalizer>(pattern_of(spec.at("pattern")), required_field<std::string>(spec, "content"));
  if (type == "NFC" || type == "NFKC") return std::make_unique<AsciiOnlyNormalizer>(type, false);
  if (type == "Lowercase") return std::make_unique<AsciiOnlyNormalizer>(type, true);
  throw_error(ErrorKind::kUnsupported, "normalizer type '{}' is not supported", type);
}

// ---------------------------------------------------------------------------------------
// Pre-tokenizers: split a segment into pieces the BPE model sees one at a time.
struct Piece {
  std::string text;
  bool at_input_start;  // begins at offset 0 of the original text (Metaspace "first")
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual std::vector<Piece> split(std::vector<Piece> pieces) const = 0;
};

enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

SplitBehavior parse_behavior(const std::string& name) {
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  throw_error(ErrorKind::kUnsupported, "split behavior '{}' is not supported", name);
}

// Hugging Face's split semantics: the text is cut into matching and non-matching parts,
// then the behavior decides what becomes of the matches.
std::vector<Piece> split_piece(const Piece& piece, const Regex& regex, SplitBehavior behavior, bool invert) {
  struct Part {
    std::size_t begin, end;
    bool is_match;
  };
  std::vector<Part> parts;
  std::size_t last = 0;
  for (const auto& [b, e] : regex.find_all(piece.text)) {
    if (b > last) parts.push_back({last, b, invert});
    parts.push_back({b, e, !invert});
    last = e;
  }
  if (last < piece.text.size()) parts.push_back({last, piece.text.size(), invert});

  std::vector<Piece> out;
  auto emit = [&](std::size_t b, std::size_t e) { out.push_back({piece.text.substr(b, e - b), piece.at_input_start && b == 0}); };
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const auto& p : parts) emit(p.begin, p.end);
      break;
    case SplitBehavior::kRemoved:
      for (const auto& p : parts)
        if (!p.is_match) emit(p.begin, p.end);
      break;
    case SplitBehavior::kContiguous:
      for (std::size_t i = 0; i < parts.size();) {
        std::size_t j = i + 1;
        if (parts[i].is_match)
          while (j < parts.size() && parts[j].is_match) ++j;
        emit(parts[i].begin, parts[j - 1].end);
        i = j;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i + 1 < parts.size() && !parts[i].is_match && parts[i + 1].is_match) {
          emit(parts[i].begin, parts[i + 1].end);
          ++i;
        } else {
          emit(parts[i].begin, parts[i].end);
        }
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i + 1 < parts.size() && parts[i].is_match && !parts[i + 1].is_match) {
          emit(parts[i].begin, parts[i + 1].end);
          ++i;
        } else {
          emit(parts[i].begin, parts[i].end);
        }
      }
      break;
  }
  return out;
}

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(const std::string& pattern, SplitBehavior behavior, bool invert)
      : regex_(pattern), behavior_(behavior), invert_(invert) {}
  std::vector<Piece> split(std::vector<Piece> pieces) const override {
    std::vector<Piece> out;
    for (const auto& p : pieces) {
      auto parts = split_piece(p, regex_, behavior_, invert_);
      std::move(parts.begin(), parts.end(), std::back_inserter(out));
    }
    return out;
  }
 private:
  Regex regex_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2SplitPattern);
  }
  std::vector<Piece> split(std::vector<Piece> pieces) const override {
    std::vector<Piece> out;
    for (auto& p : pieces) {
      if (add_prefix_space_ && !p.text.empty() && p.text[0] != ' ') p.text.insert(0, " ");
      std::vector<Piece> parts;
      if (regex_) parts = split_piece(p, *regex_, SplitBehavior::kIsolated, false);
      else parts.push_back(std::move(p));
      for (auto& part : parts) out.push_back({bytes_to_byte_level(part.text), part.at_input_start});
    }
    return out;
  }
 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  MetaspacePreTokenizer(std::string replacement, Prepend prepend, bool split)
      : replacement_(std::move(replacement)), prepend_(prepend), split_(split), space_(" "),
        replacement_regex_(regex_escape(replacement_)) {}
  std::vector<Piece> split(std::vector<Piece> pieces) const override {
    std::vector<Piece> out;
    for (auto& p : pieces) {
      p.text = replace_all(p.text, space_, replacement_);
      const bool prepend = prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && p.at_input_start);
      if (prepend && p.text.compare(0, replacement_.size(), replacement_) != 0) p.text.insert(0, replacement_);
      if (!split_) {
        out.push_back(std::move(p));
        continue;
      }
      auto parts = split_piece(p, replacement_regex_, SplitBehavior::kMergedWithNext, false);
      std::move(parts.begin(), parts.end(), std::back_inserter(out));
    }
    return out;
  }
 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
  Regex space_;
  Regex replacement_regex_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  std::vector<Piece> split(std::vector<Piece> pieces) const override {
    for (const auto& s : steps_) pieces = s->split(std::move(pieces));
    return pieces;
  }
 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

MetaspacePreTokenizer::Prepend metaspace_prepend(const json& spec) {
  if (spec.contains("prepend_scheme")) {
    const auto scheme = required_field<std::string>(spec, "prepend_scheme");
    if (scheme == "always") return MetaspacePreTokenizer::Prepend::kAlways;
    if (scheme == "first") return MetaspacePreTokenizer::Prepend::kFirst;
    if (scheme == "never") return MetaspacePreTokenizer::Prepend::kNever;
    throw_error(ErrorKind::kCorruptInput, "Metaspace prepend_scheme '{}' is not always|first|never", scheme);
  }
  return optional_field<bool>(spec, "add_prefix_space", true) ? MetaspacePreTokenizer::Prepend::kAlways
                                                              : MetaspacePreTokenizer::Prepend::kNever;
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& spec) {
  if (spec.is_null()) return nullptr;
  const auto type = required_field<std::string>(spec, "type");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const auto& s : spec.at("pretokenizers")) steps.push_back(make_pre_tokenizer(s));
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  if (type == "ByteLevel")
    return std::make_unique<ByteLevelPreTokenizer>(optional_field<bool>(spec, "add_prefix_space", false),
                                                   optional_field<bool>(spec, "use_regex", true));
  if (type == "Split")
    return std::make_unique<SplitPreTokenizer>(pattern_of(spec.at("pattern")),
                                               parse_behavior(required_field<std::string>(spec, "behavior")),
                                               optional_field<bool>(spec, "invert", false));
  if (type == "Metaspace")
    return std::make_unique<MetaspacePreTokenizer>(optional_field<std::string>(spec, "replacement", kMetaspace),
                                                   metaspace_prepend(spec), optional_field<bool>(spec, "split", true));
  if (type == "Digits") {
    const bool individual = optional_field<bool>(spec, "individual_digits", false);
    return std::make_unique<SplitPreTokenizer>(R"(\p{N})",
                                               individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, false);
  }
  throw_error(ErrorKind::kUnsupported, "pre_tokenizer type '{}' is not supported", type);
}

// ---------------------------------------------------------------------------------------
// Decoders: token strings -> text, applied as a chain on the whole token list.
class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void apply(std::vector<std::string>& tokens) const = 0;
  // Whether tokens are read as GPT-2's byte alphabet (ByteLevel, alone or in a sequence).
  virtual bool reads_byte_level() const { return false; }
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void apply(std::vector<std::string>& tokens) const override {
    for (const auto& s : steps_) s->apply(tokens);
  }
  bool reads_byte_level() const override {
    return std::any_of(steps_.begin(), steps_.end(), [](const auto& s) { return s->reads_byte_level(); });
  }
 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

class ByteLevelDecoder : public Decoder {
 public:
  bool reads_byte_level() const override { return true; }
  void apply(std::vector<std::string>& tokens) const override {
    const auto& table = byte_level_table();
    std::string bytes;
    for (const auto& t : tokens) {
      for (std::size_t i = 0; i < t.size();) {
        const std::size_t len = utf8::sequence_length(t, i);
        if (len == 0) {  // not UTF-8: keep the raw byte
          bytes += t[i++];
          continue;
        }
        auto it = table.char_to_byte.find(utf8::decode_at(t, i));
        if (it != table.char_to_byte.end()) bytes += static_cast<char>(it->second);
        else bytes.append(t, i, len);  // a character outside the byte alphabet passes through
        i += len;
      }
    }
    tokens.assign(1, utf8::repair(bytes));
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(const std::string& pattern, std::string content) : regex_(pattern), content_(std::move(content)) {}
  void apply(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) t = replace_all(t, regex_, content_);
  }
 private:
  Regex regex_;
  std::string content_;
};

// "<0xE2>" "<0x96>" "<0x81>" -> "▁"; bytes that do not form valid UTF-8 become U+FFFD each.
class ByteFallbackDecoder : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    std::size_t pending_count = 0;
    auto flush = [&] {
      if (pending_count == 0) return;
      if (!utf8::find_invalid(pending)) {
        out.push_back(pending);
      } else {
        for (std::size_t i = 0; i < pending_count; ++i) out.push_back("\xEF\xBF\xBD");
      }
      pending.clear();
      pending_count = 0;
    };
    for (auto& t : tokens) {
      int byte = parse_byte_token(t);
      if (byte >= 0) {
        pending += static_cast<char>(byte);
        ++pending_count;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }
  static int parse_byte_token(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    auto hex = [](char c) {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    const int hi = hex(t[3]), lo = hex(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

class FuseDecoder : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens) const override {
    std::string joined;
    for (const auto& t : tokens) joined += t;
    tokens.assign(1, std::move(joined));
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, int start, int stop) : content_(std::move(content)), start_(start), stop_(stop) {}
  void apply(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      for (int i = 0; i < start_ && t.compare(0, content_.size(), content_) == 0; ++i) t.erase(0, content_.size());
      for (int i = 0; i < stop_ && t.size() >= content_.size() &&
                      t.compare(t.size() - content_.size(), content_.size(), content_) == 0;
           ++i)
        t.erase(t.size() - content_.size());
    }
  }
 private:
  std::string content_;
  int start_, stop_;
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first_space)
      : replacement_(regex_escape(replacement)), strip_first_space_(strip_first_space) {}
  void apply(std::vector<std::string>& tokens) const override {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = replace_all(tokens[i], replacement_, " ");
      if (i == 0 && strip_first_space_ && !tokens[i].empty() && tokens[i][0] == ' ') tokens[i].erase(0, 1);
    }
  }
 private:
  Regex replacement_;
  bool strip_first_space_;
};

std::unique_ptr<Decoder> make_decoder(const json& spec) {
  if (spec.is_null()) return nullptr;
  const auto type = required_field<std::string>(spec, "type");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const auto& s : spec.at("decoders")) steps.push_back(make_decoder(s));
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Replace")
    return std::make_unique<ReplaceDecoder>(pattern_of(spec.at("pattern")), required_field<std::string>(spec, "content"));
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip")
    return std::make_unique<StripDecoder>(required_field<std::string>(spec, "content"),
                                          static_cast<int>(required_field<std::int64_t>(spec, "start")),
                                          static_cast<int>(required_field<std::int64_t>(spec, "stop")));
  if (type == "Metaspace")
    return std::make_unique<MetaspaceDecoder>(optional_field<std::string>(spec, "replacement", kMetaspace),
                                              metaspace_prepend(spec) != MetaspacePreTokenizer::Prepend::kNever);
  throw_error(ErrorKind::kUnsupported, "decoder type '{}' is not supported", type);
}

// ---------------------------------------------------------------------------------------
struct AddedToken {
  std::int64_t id;
  std::string content;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool special = false;
};

bool is_word_char(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }
bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// What the post-processor puts around a single sequence.
struct Template {
  std::vector<std::int64_t> leading;
  std::vector<std::int64_t> trailing;
};

Template parse_post_processor(const json& spec) {
  Template t;
  if (spec.is_null()) return t;
  const auto type = required_field<std::string>(spec, "type");
  if (type == "ByteLevel") return t;  // only adjusts offsets
  if (type == "Sequence") {
    for (const auto& p : spec.at("processors")) {
      Template inner = parse_post_processor(p);
      t.leading.insert(t.leading.end(), inner.leading.begin(), inner.leading.end());
      t.trailing.insert(t.trailing.end(), inner.trailing.begin(), inner.trailing.end());
    }
    return t;
  }
  if (type == "TemplateProcessing") {
    const json& specials = spec.at("special_tokens");
    bool seen_sequence = false;
    for (const auto& item : spec.at("single")) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
        continue;
      }
      const auto name = required_field<std::string>(item.at("SpecialToken"), "id");
      if (!specials.contains(name)) throw_error(ErrorKind::kCorruptInput, "post_processor: special token '{}' has no ids", name);
      for (const auto& id : specials.at(name).at("ids")) (seen_sequence ? t.trailing : t.leading).push_back(id.get<std::int64_t>());
    }
    return t;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    t.leading.push_back(spec.at("cls").at(1).get<std::int64_t>());
    t.trailing.push_back(spec.at("sep").at(1).get<std::int64_t>());
    return t;
  }
  throw_error(ErrorKind::kUnsupported, "post_processor type '{}' is not supported", type);
}

// The special-token content of a tokenizer_config.json entry: "<s>" or {"content": "<s>", ...}.
std::optional<std::string> config_token(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content")) return required_field<std::string>(*it, "content");
  throw_error(ErrorKind::kInvalidConfig, "field '{}' must be a string or an object with 'content'", key);
}

class HfTokenizer : public Tokenizer {
 public:
  HfTokenizer(std::string kind, std::unique_ptr<BpeModel> model, std::vector<AddedToken> added,
              std::unique_ptr<Normalizer> normalizer, std::unique_ptr<PreTokenizer> pre_tokenizer,
              std::unique_ptr<Decoder> decoder, Template post, const json& config)
      : kind_(std::move(kind)), model_(std::move(model)), added_(std::move(added)), normalizer_(std::move(normalizer)),
        pre_tokenizer_(std::move(pre_tokenizer)), decoder_(std::move(decoder)), post_(std::move(post)),
        byte_level_decoder_(decoder_ && decoder_->reads_byte_level()) {
    // Longest first, so "<|eot_id|>" wins over any shorter token it contains.
    std::sort(added_.begin(), added_.end(), [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
    for (const auto& a : added_) added_by_id_[a.id] = &a;
    vocab_size_ = model_->id_limit();
    for (const auto& a : added_) vocab_size_ = std::max(vocab_size_, a.id + 1);

    if (auto bos = config_token(config, "bos_token")) bos_id_ = lookup(*bos, "bos_token");
    else if (!post_.leading.empty()) bos_id_ = post_.leading.front();
    if (auto eos = config_token(config, "eos_token")) eos_id_ = lookup(*eos, "eos_token");
    // transformers lets tokenizer_config.json override what the post-processor adds.
    if (config.contains("add_bos_token")) {
      post_.leading.clear();
      if (required_field<bool>(config, "add_bos_token")) {
        if (!bos_id_) throw_error(ErrorKind::kInvalidConfig, "add_bos_token is true but no bos_token is defined");
        post_.leading.push_back(*bos_id_);
      }
    }
    if (config.contains("add_eos_token")) {
      post_.trailing.clear();
      if (required_field<bool>(config, "add_eos_token")) {
        if (!eos_id_) throw_error(ErrorKind::kInvalidConfig, "add_eos_token is true but no eos_token is defined");
        post_.trailing.push_back(*eos_id_);
      }
    }
  }

  std::vector<std::int64_t> encode(std::string_view text, BosPolicy bos) const override {
    if (auto bad = utf8::find_invalid(text))
      throw_error(ErrorKind::kInvalidArgument, "text is not valid UTF-8 (byte {})", *bad);
    std::vector<std::int64_t> ids;
    switch (bos) {
      case BosPolicy::kAuto: ids = post_.leading; break;
      case BosPolicy::kYes:
        if (!bos_id_) throw_error(ErrorKind::kInvalidArgument, "BOS requested but this tokenizer defines no BOS token");
        ids = post_.leading;
        if (std::find(ids.begin(), ids.end(), *bos_id_) == ids.end()) ids.insert(ids.begin(), *bos_id_);
        break;
      case BosPolicy::kNo:
        for (auto id : post_.leading)
          if (!bos_id_ || id != *bos_id_) ids.push_back(id);
        break;
    }
    std::size_t cursor = 0;
    for (const Match& m : find_added(text)) {
      encode_segment(text.substr(cursor, m.begin - cursor), cursor == 0, ids);
      ids.push_back(m.token->id);
      cursor = m.end;
    }
    encode_segment(text.substr(cursor), cursor == 0, ids);
    ids.insert(ids.end(), post_.trailing.begin(), post_.trailing.end());
    return ids;
  }

  std::string decode(const std::vector<std::int64_t>& ids, bool skip_special) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (auto id : ids) {
      if (skip_special && is_special(id)) continue;
      auto added = added_by_id_.find(id);
      // An added token's content is text, not the vocabulary's byte spelling: DeepSeek's
      // added token "ü" would otherwise reach the byte-level decoder as GPT-2's stand-in
      // for the byte 0xFC and decode to U+FFFD (as it does in Hugging Face's fast
      // tokenizers; llama.cpp writes such tokens as they are). Spelled in the byte
      // alphabet, it decodes to itself and the decoder still sees one token sequence.
      if (added != added_by_id_.end() && byte_level_decoder_) tokens.push_back(bytes_to_byte_level(added->second->content));
      else tokens.push_back(token_text(id));
    }
    if (decoder_) {
      decoder_->apply(tokens);
    } else if (tokens.size() > 1) {
      std::string joined = tokens[0];  // without a decoder, Hugging Face joins tokens with spaces
      for (std::size_t i = 1; i < tokens.size(); ++i) joined += " " + tokens[i];
      tokens.assign(1, joined);
    }
    std::string text;
    for (const auto& t : tokens) text += t;
    return utf8::repair(text);
  }

  std::int64_t vocab_size() const override { return vocab_size_; }
  std::optional<std::int64_t> bos_id() const override { return bos_id_; }
  std::optional<std::int64_t> eos_id() const override { return eos_id_; }
  bool is_special(std::int64_t id) const override {
    auto it = added_by_id_.find(id);
    return it != added_by_id_.end() && it->second->special;
  }
  std::string token_text(std::int64_t id) const override {
    auto it = added_by_id_.find(id);
    if (it != added_by_id_.end()) return it->second->content;
    const std::string& t = model_->token(id);
    if (t.empty()) throw_error(ErrorKind::kNotFound, "token id {} is not in the vocabulary (size {})", id, vocab_size_);
    return t;
  }
  std::string describe() const override {
    return fmt::format("{} BPE, {} tokens, {} merges, {} added tokens", kind_, vocab_size_, model_->merge_count(), added_.size());
  }

 private:
  struct Match {
    std::size_t begin, end;
    const AddedToken* token;
  };

  std::int64_t lookup(const std::string& content, const char* field) const {
    for (const auto& a : added_)
      if (a.content == content) return a.id;
    if (auto id = model_->token_id(content)) return *id;
    throw_error(ErrorKind::kInvalidConfig, "{} '{}' is not in the vocabulary", field, content);
  }

  // Leftmost, then longest, non-overlapping occurrences of added tokens in the raw text.
  std::vector<Match> find_added(std::string_view text) const {
    std::vector<Match> candidates;
    for (const auto& a : added_) {
      if (a.content.empty()) continue;
      for (std::size_t pos = text.find(a.content); pos != std::string_view::npos; pos = text.find(a.content, pos + 1)) {
        const std::size_t end = pos + a.content.size();
        if (a.single_word && ((pos > 0 && is_word_char(text[pos - 1])) || (end < text.size() && is_word_char(text[end]))))
          continue;
        candidates.push_back({pos, end, &a});
      }
    }
    std::stable_sort(candidates.begin(), candidates.end(), [](const Match& x, const Match& y) {
      return x.begin != y.begin ? x.begin < y.begin : (x.end - x.begin) > (y.end - y.begin);
    });
    std::vector<Match> chosen;
    std::size_t taken_until = 0;
    for (Match m : candidates) {
      if (m.begin < taken_until) continue;
      if (m.token->lstrip)
        while (m.begin > taken_until && is_space(text[m.begin - 1])) --m.begin;
      if (m.token->rstrip)
        while (m.end < text.size() && is_space(text[m.end])) ++m.end;
      chosen.push_back(m);
      taken_until = m.end;
    }
    return chosen;
  }

  void encode_segment(std::string_view segment, bool at_input_start, std::vector<std::int64_t>& ids) const {
    if (segment.empty()) return;
    std::string text(segment);
    if (normalizer_) normalizer_->apply(text);
    std::vector<Piece> pieces{{std::move(text), at_input_start}};
    if (pre_tokenizer_) pieces = pre_tokenizer_->split(std::move(pieces));
    for (const auto& p : pieces) model_->encode_piece(p.text, ids);
  }

  std::string kind_;
  std::unique_ptr<BpeModel> model_;
  std::vector<AddedToken> added_;
  std::unordered_map<std::int64_t, const AddedToken*> added_by_id_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Decoder> decoder_;
  Template post_;
  bool byte_level_decoder_ = false;
  std::int64_t vocab_size_ = 0;
  std::optional<std::int64_t> bos_id_;
  std::optional<std::int64_t> eos_id_;
};

std::vector<std::pair<std::string, std::string>> parse_merges(const json& merges) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (const auto& m : merges) {
    if (m.is_string()) {
      const auto s = m.get<std::string>();
      const auto space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        throw_error(ErrorKind::kCorruptInput, "merge '{}' is not two tokens separated by one space", s);
      out.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      throw_error(ErrorKind::kCorruptInput, "merge {} is neither \"a b\" nor [\"a\", \"b\"]", m.dump());
    }
  }
  return out;
}

std::unordered_map<std::string, std::int64_t> parse_vocab(const json& vocab) {
  if (!vocab.is_object()) throw_error(ErrorKind::kCorruptInput, "vocab is not an object of token -> id");
  std::unordered_map<std::string, std::int64_t> out;
  out.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer()) throw_error(ErrorKind::kCorruptInput, "vocab id of '{}' is not an integer", token);
    out.emplace(token, id.get<std::int64_t>());
  }
  return out;
}

json read_config(const std::optional<fs::path>& path) {
  if (!path || !fs::exists(*path)) return json::object();
  json config = read_json_file(*path);
  if (!config.is_object()) throw_error(ErrorKind::kCorruptInput, "{}: not a JSON object", path->string());
  return config;
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer_from_json(const json& spec, const json& config,
                                                       const std::string& source_description) {
  return with_json_context(source_description, [&]() -> std::unique_ptr<Tokenizer> {
    if (!spec.is_object() || !spec.contains("model")) throw_error(ErrorKind::kCorruptInput, "no 'model' object");
    if (!config.is_object()) throw_error(ErrorKind::kCorruptInput, "the tokenizer config is not a JSON object");
    const json& model = spec.at("model");
    const auto type = optional_field<std::string>(model, "type", "BPE");
    if (type != "BPE") throw_error(ErrorKind::kUnsupported, "model type '{}' (only BPE tokenizers are supported)", type);
    if (optional_field<double>(model, "dropout", 0.0) > 0.0)
      throw_error(ErrorKind::kUnsupported, "BPE dropout is a training-time feature and makes encoding random");
    if (!optional_field<std::string>(model, "continuing_subword_prefix", "").empty() ||
        !optional_field<std::string>(model, "end_of_word_suffix", "").empty())
      throw_error(ErrorKind::kUnsupported, "BPE continuing_subword_prefix / end_of_word_suffix");

    BpeModel::Options options;
    options.byte_fallback = optional_field<bool>(model, "byte_fallback", false);
    options.fuse_unk = optional_field<bool>(model, "fuse_unk", false);
    options.ignore_merges = optional_field<bool>(model, "ignore_merges", false);
    if (model.contains("unk_token") && !model.at("unk_token").is_null())
      options.unk_token = required_field<std::string>(model, "unk_token");
    auto bpe = std::make_unique<BpeModel>(parse_vocab(model.at("vocab")), parse_merges(model.at("merges")), options);

    std::vector<AddedToken> added;
    if (spec.contains("added_tokens")) {
      for (const auto& a : spec.at("added_tokens")) {
        AddedToken t;
        t.id = required_field<std::int64_t>(a, "id");
        t.content = required_field<std::string>(a, "content");
        t.lstrip = optional_field<bool>(a, "lstrip", false);
        t.rstrip = optional_field<bool>(a, "rstrip", false);
        t.single_word = optional_field<bool>(a, "single_word", false);
        t.special = optional_field<bool>(a, "special", false);
        added.push_back(std::move(t));
      }
    }
    const std::string kind = options.byte_fallback ? "SentencePiece-style" : "byte-level";
    return std::make_unique<HfTokenizer>(kind, std::move(bpe), std::move(added), make_normalizer(spec.value("normalizer", json())),
                                         make_pre_tokenizer(spec.value("pre_tokenizer", json())),
                                         make_decoder(spec.value("decoder", json())),
                                         parse_post_processor(spec.value("post_processor", json())), config);
  });
}

std::unique_ptr<Tokenizer> load_hf_tokenizer(const fs::path& tokenizer_json, const std::optional<fs::path>& tokenizer_config) {
  const json spec = read_json_file(tokenizer_json);
  const json config = read_config(tokenizer_config);
  return load_hf_tokenizer_from_json(spec, config, tokenizer_json.string());
}

std::unique_ptr<Tokenizer> load_gpt2_bpe_tokenizer(const fs::path& vocab_json, const fs::path& merges_txt,
                                                   const std::optional<fs::path>& tokenizer_config) {
  const json vocab_spec = read_json_file(vocab_json);
  const json config = read_config(tokenizer_config);
  auto vocab = with_json_context(vocab_json.string(), [&] { return parse_vocab(vocab_spec); });

  std::vector<std::pair<std::string, std::string>> merges;
  with_json_context(merges_txt.string(), [&] {
    std::ifstream in(merges_txt);
    if (!in) throw_error(ErrorKind::kNotFound, "cannot open");
    std::string line;
    for (int line_no = 1; std::getline(in, line); ++line_no) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
      const auto space = line.find(' ');
      if (space == std::string::npos) throw_error(ErrorKind::kCorruptInput, "line {}: '{}' is not two tokens", line_no, line);
      merges.emplace_back(line.substr(0, space), line.substr(space + 1));
    }
  });

  // GPT-2's slow tokenizer treats <|endoftext|> and the config's special tokens as
  // atomic special tokens.
  std::vector<AddedToken> added;
  std::set<std::string> specials{"<|endoftext|>"};
  for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"})
    if (auto t = config_token(config, key)) specials.insert(*t);
  for (const auto& s : specials) {
    auto it = vocab.find(s);
    if (it != vocab.end()) added.push_back(AddedToken{it->second, s, false, false, false, true});
  }
  json effective_config = config;
  if (!effective_config.contains("bos_token") && vocab.count("<|endoftext|>")) effective_config["bos_token"] = "<|endoftext|>";
  if (!effective_config.contains("eos_token") && vocab.count("<|endoftext|>")) effective_config["eos_token"] = "<|endoftext|>";

  return with_json_context(vocab_json.string(), [&]() -> std::unique_ptr<Tokenizer> {
    auto bpe = std::make_unique<BpeModel>(std::move(vocab), merges, BpeModel::Options{});
    return std::make_unique<HfTokenizer>("byte-level", std::move(bpe), std::move(added), nullptr,
                                         std::make_unique<ByteLevelPreTokenizer>(false, true),
                                         std::make_unique<ByteLevelDecoder>(), Template{}, effective_config);
  });
}

void write_byte_level_tokenizer(const fs::path& folder, std::int64_t model_max_length) {
  const auto& table = byte_level_table();
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[table.byte_to_char[b]] = b;
  auto special = [](std::int64_t id, const char* content) {
    return json{{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
                {"rstrip", false},  {"normalized", false}, {"special", true}};
  };
  const json bos_entry = {{"id", "<s>"}, {"ids", {kByteTokenizerBos}}, {"tokens", {"<s>"}}};
  const json spec = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", {special(kByteTokenizerBos, "<s>"), special(kByteTokenizerEos, "</s>")}},
      {"normalizer", nullptr},
      // No regex split: every byte is its own token whatever the text.
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair",
         {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{"<s>", bos_entry}}}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", json::array()}}}};
  const json config = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                       {"bos_token", "<s>"},
                       {"eos_token", "</s>"},
                       {"add_bos_token", true},
                       {"add_eos_token", false},
                       {"model_max_length", model_max_length}};
  fs::create_directories(folder);
  write_file_atomically(folder / "tokenizer.json", [&](std::ostream& out) { out << spec.dump(1) << "\n"; });
  write_file_atomically(folder / "tokenizer_config.json", [&](std::ostream& out) { out << config.dump(2) << "\n"; });
}

}  // namespace cushioncache
