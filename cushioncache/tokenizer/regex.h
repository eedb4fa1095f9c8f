// A compiled PCRE2 pattern in UTF + Unicode-property mode (what the Hugging Face
// pre-tokenizer regexes need: \p{L}, \p{N}, lookahead), JIT-compiled when available.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cushioncache {

class Regex {
 public:
  // Throws kInvalidConfig naming the pattern and PCRE2's message if it does not compile.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // [begin, end) byte spans of all non-overlapping matches, left to right. The text must
  // be valid UTF-8 (the tokenizer checks before calling).
  std::vector<std::pair<std::size_t, std::size_t>> find_all(std::string_view text) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*, kept opaque so the header stays free of pcre2.h
};

}  // namespace cushioncache
