// UTF-8 helpers for the tokenizers: splitting into characters, validation, and lossy
// repair (invalid bytes become U+FFFD, as Hugging Face's decode does).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cushioncache::utf8 {

// Length of the valid UTF-8 sequence starting at s[pos], or 0 if it is invalid there.
std::size_t sequence_length(std::string_view s, std::size_t pos);

// Byte offset of the first invalid sequence, or nullopt if `s` is valid UTF-8.
std::optional<std::size_t> find_invalid(std::string_view s);

// Each invalid byte replaced by U+FFFD.
std::string repair(std::string_view s);

// Number of bytes at the end of `s` that start a valid but incomplete sequence
// (used to hold back the tail of a stream until its character is complete).
std::size_t incomplete_tail(std::string_view s);

// The characters of valid UTF-8 text, as views into it.
std::vector<std::string_view> split_chars(std::string_view s);

std::string encode(std::uint32_t codepoint);
// The codepoint of the (valid) sequence at s[pos].
std::uint32_t decode_at(std::string_view s, std::size_t pos);

}  // namespace cushioncache::utf8
