// What every fuzz target shares: the input is written to a file (our parsers read files,
// as users give them), the parser runs, and only a cushioncache::Error that blames the
// input is an acceptable outcome. Anything else is a finding and aborts, so libFuzzer
// records the input: a crash, a sanitizer report, an internal error (a broken invariant
// of ours, or a LibTorch/JSON/YAML exception that escaped without naming the input), or
// any other exception.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "cushioncache/core/error.h"

namespace cushioncache::fuzz {

// A private folder for this process (libFuzzer's -jobs/-workers run several at once).
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("cc-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] { std::error_code ignored; std::filesystem::remove_all(scratch_dir(), ignored); });
    return d;
  }();
  return dir;
}

inline std::filesystem::path write_input(const std::string& name, const std::uint8_t* data, std::size_t size) {
  const auto path = scratch_dir() / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

template <typename Parse>
int expect_clean_outcome(Parse&& parse) {
  try {
    parse();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kInternal) {
      std::fprintf(stderr, "internal error on fuzzed input (should have blamed the input): %s\n", e.what());
      std::abort();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "exception escaped the parser: %s\n", e.what());
    std::abort();
  }
  return 0;
}

}  // namespace cushioncache::fuzz
