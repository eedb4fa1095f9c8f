// Generation: llama2.c's golden greedy text through the library call, streaming that adds
// up to the final text, seeded sampling, and argument checks.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include "cushioncache/core/files.h"
#include "cushioncache/model/generate.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/tokenizer/tokenizer.h"
#include "support/test_support.h"

namespace cc = cushioncache;

TEST_CASE("greedy generation reproduces llama2.c and streams whole characters", "[generate]") {
  auto stories = cc::testing::load_stories({"models/stories260K/golden_greedy_200.txt"});
  if (!stories) return;
  const auto golden = cc::testing::data_file("models/stories260K/golden_greedy_200.txt");
  auto& model = stories->model;
  auto& tok = stories->tokenizer;
  cc::GenerateOptions options;
  options.temperature = 0;
  options.steps = 200;
  std::string streamed;
  options.on_text = [&](std::string_view piece) { streamed += piece; };
  const cc::GenerateResult result = cc::generate(*model, *tok, "", options);
  CHECK(result.text == cc::read_file(*golden));
  CHECK(streamed == result.text);
  CHECK(result.prompt_tokens == 1);
  CHECK(result.tokens.size() == 201);  // BOS + one token per step

  SECTION("a prompt is continued and included in the text") {
    const auto with_prompt = cc::generate(*model, *tok, "Once upon a time", options);
    CHECK(with_prompt.text.rfind("Once upon a time", 0) == 0);
    // The prompt's own greedy continuation agrees with the unprompted story's.
    CHECK(with_prompt.text.substr(0, 40) == result.text.substr(0, 40));
  }
}

TEST_CASE("sampling is reproducible from its seed", "[generate]") {
  auto stories = cc::testing::load_stories();
  if (!stories) return;
  auto& model = stories->model;
  auto& tok = stories->tokenizer;
  cc::GenerateOptions options;
  options.temperature = 1.0;
  options.top_p = 0.9;
  options.steps = 60;
  options.seed = 42;
  const auto a = cc::generate(*model, *tok, "Lily", options);
  const auto b = cc::generate(*model, *tok, "Lily", options);
  CHECK(a.tokens == b.tokens);
  options.seed = 43;
  CHECK(cc::generate(*model, *tok, "Lily", options).tokens != a.tokens);
}

TEST_CASE("generation rejects bad arguments and mismatched tokenizers", "[generate][errors]") {
  auto model = cc::build_model(cc::testing::random_weights(cc::testing::tiny_llama_config(true), 1));
  auto tok_path = cc::testing::data_file("models/stories260K/tok512.bin");
  if (!tok_path) return;
  auto tok = cc::load_tokenizer(*tok_path);  // 512 tokens, the tiny model has 97
  cc::GenerateOptions options;
  cc::testing::expect_error([&] { cc::generate(*model, *tok, "x", options); }, cc::ErrorKind::kMismatch, {"512", "97"});
  auto bin = cc::testing::data_file("models/stories260K/stories260K.bin");
  if (!bin) return;
  auto stories = cc::load_model(*bin);
  options.temperature = -1;
  cc::testing::expect_error([&] { cc::generate(*stories, *tok, "x", options); }, cc::ErrorKind::kInvalidArgument, {"temperature"});
  options.temperature = 1;
  options.top_p = 0;
  cc::testing::expect_error([&] { cc::generate(*stories, *tok, "x", options); }, cc::ErrorKind::kInvalidArgument, {"top_p"});
  options.top_p = 1;
  options.steps = 2;
  cc::testing::expect_error([&] { cc::generate(*stories, *tok, "a long prompt of many tokens", options); },
                            cc::ErrorKind::kInvalidArgument, {"prompt", "steps"});
}
