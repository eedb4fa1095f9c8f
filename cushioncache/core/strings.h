// Prefix and suffix tests (std::string's own arrive with C++20).
#pragma once

#include <string_view>

namespace cushioncache {

inline bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
inline bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace cushioncache
