// Shared helpers for the Catch2 suite: locating the real data (or skipping), temporary
// folders, random LLaMA-family checkpoints in the real Hugging Face layout, and matching
// errors by kind and message.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/core/Tensor.h>

#include "cushioncache/core/error.h"
#include "cushioncache/model/config.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/tokenizer/tokenizer.h"
#include "support/test_models.h"

namespace cushioncache::testing {

int skipped_count();
void skip_test(const std::string& why);
// For missing hardware (a GPU): a skip even under CC_REQUIRE_DATA=1, since CI has none.
void skip_without_hardware(const std::string& why);

// The file under the shared data folder, or nullopt after recording a skip (or failing,
// when CC_REQUIRE_DATA=1).
std::optional<std::filesystem::path> data_file(std::string_view relative);

// llama2.c's stories260K and its tokenizer, the real model most tests run on; nullopt
// after recording a skip if they, or the other data files a test names, are missing.
struct StoriesFiles {
  std::filesystem::path bin, tokenizer;
};
std::optional<StoriesFiles> stories_files(std::initializer_list<std::string_view> also_needed = {});
struct StoriesModel {
  std::unique_ptr<CausalLM> model;
  std::unique_ptr<Tokenizer> tokenizer;
};
std::optional<StoriesModel> load_stories(std::initializer_list<std::string_view> also_needed = {});

// Runs fn and checks it throws cushioncache::Error of `kind` whose message contains
// every fragment.
void expect_error(const std::function<void()>& fn, ErrorKind kind, std::initializer_list<std::string_view> fragments);

// One sequence as a [1, T] int64 batch.
at::Tensor ids_tensor(const std::vector<std::int64_t>& ids);
// n token ids uniform in [0, vocab), deterministic in seed.
std::vector<std::int64_t> random_ids(std::int64_t n, std::int64_t vocab, std::uint64_t seed);

// Max |a - b| over all elements, in float64.
double max_abs_diff(const at::Tensor& a, const at::Tensor& b);

}  // namespace cushioncache::testing
