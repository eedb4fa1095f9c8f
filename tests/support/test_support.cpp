#include "support/test_support.h"

#include <cstdlib>
#include <fstream>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "cushioncache/core/data_dir.h"

namespace cushioncache::testing {
namespace fs = std::filesystem;

namespace {
int& skips() {
  static int count = 0;
  return count;
}
}  // namespace

int skipped_count() { return skips(); }

void skip_test(const std::string& why) {
  const char* require = std::getenv("CC_REQUIRE_DATA");
  if (require != nullptr && std::string(require) == "1") FAIL("required data is missing: " << why);
  ++skips();
  WARN("SKIPPED: " << why);
}

void skip_without_hardware(const std::string& why) {
  ++skips();
  WARN("SKIPPED: " << why);
}

std::optional<fs::path> data_file(std::string_view relative) {
  if (auto found = find_data(relative)) return found;
  skip_test(fmt::format("{} not found under {} (set CC_DATA_DIR)", relative, data_dir().string()));
  return std::nullopt;
}

std::optional<StoriesFiles> stories_files(std::initializer_list<std::string_view> also_needed) {
  auto bin = data_file("models/stories260K/stories260K.bin");
  auto tokenizer = data_file("models/stories260K/tok512.bin");
  bool found = bin && tokenizer;
  for (auto relative : also_needed) found = data_file(relative).has_value() && found;
  if (!found) return std::nullopt;
  return StoriesFiles{*bin, *tokenizer};
}

std::optional<StoriesModel> load_stories(std::initializer_list<std::string_view> also_needed) {
  auto files = stories_files(also_needed);
  if (!files) return std::nullopt;
  return StoriesModel{load_model(files->bin), load_tokenizer(files->tokenizer)};
}

void expect_error(const std::function<void()>& fn, ErrorKind kind, std::initializer_list<std::string_view> fragments) {
  try {
    fn();
  } catch (const Error& e) {
    INFO("message: " << e.what());
    CHECK(to_string(e.kind()) == std::string(to_string(kind)));
    for (auto f : fragments) CHECK_THAT(e.what(), Catch::Matchers::Contains(std::string(f)));
    return;
  }
  FAIL("expected a cushioncache::Error of kind " << to_string(kind));
}

at::Tensor ids_tensor(const std::vector<std::int64_t>& ids) { return at::tensor(ids, at::kLong).unsqueeze(0); }

std::vector<std::int64_t> random_ids(std::int64_t n, std::int64_t vocab, std::uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor t = at::randint(vocab, {n}, gen, at::kLong);
  return std::vector<std::int64_t>(t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + n);
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace cushioncache::testing
