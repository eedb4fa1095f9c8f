// The search and the tuning split over ranks (threads standing in for processes, through
// the same ProcessGroup interface the Gloo group implements): the same tokens, and the
// same tuned prefix up to float summation order, as one process.
#include <cstdlib>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "cushioncache/distributed/process_group.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/quant/calibration.h"
#include "cushioncache/quant/quantize_model.h"
#include "cushioncache/quant/recipe.h"
#include "cushioncache/search/prefix_searcher.h"
#include "cushioncache/tune/prefix_tuner.h"
#include "support/test_support.h"
#include "support/thread_ranks.h"

#include <catch2/catch.hpp>

namespace cc = cushioncache;

TEST_CASE("the prefix search split over two ranks selects the tokens of one process", "[search][distributed]") {
  auto files = cc::testing::stories_files({"text/c4/c4_validation_2k.jsonl"});
  if (!files) return;
  auto tokenizer = cc::load_tokenizer(files->tokenizer);
  cc::SearchOptions options;
  options.seed_prefix = {1};
  options.max_length = 3;
  options.tau = 0.99;  // accepts on stories260K: two steps
  options.text_tokens = 64;

  auto alone = cc::load_model(files->bin);
  const cc::SearchResult expected = cc::PrefixSearcher(*alone, *tokenizer, options).run();
  REQUIRE(expected.steps.size() == 2);

  cc::testing::ThreadRanks ranks(2);
  std::vector<std::unique_ptr<cc::CausalLM>> models;
  for (int r = 0; r < 2; ++r) models.push_back(cc::load_model(files->bin));
  std::vector<cc::SearchResult> results(2);
  ranks.run([&](int r) {
    auto group = ranks.rank(r);
    cc::RunContext context;
    context.group = group.get();
    results[static_cast<std::size_t>(r)] = cc::PrefixSearcher(*models[static_cast<std::size_t>(r)], *tokenizer, options, context).run();
  });
  for (const cc::SearchResult& got : results) {
    CHECK(got.prefix == expected.prefix);
    REQUIRE(got.steps.size() == expected.steps.size());
    for (std::size_t s = 0; s < got.steps.size(); ++s) {
      const cc::SearchStep &a = got.steps[s], &b = expected.steps[s];
      CHECK(a.best_token == b.best_token);
      CHECK(a.best_score == Approx(b.best_score).epsilon(1e-5));
      CHECK(a.candidates == b.candidates);
      CHECK(a.blocks_evaluated == b.blocks_evaluated);
      // The gathered best candidates, in the same order.
      REQUIRE(a.top.size() == b.top.size());
      for (std::size_t i = 0; i < 4; ++i) CHECK(a.top[i].first == b.top[i].first);
    }
  }
  CHECK(results[0].steps.back().top == results[1].steps.back().top);  // every rank holds the same record
}

TEST_CASE("data-parallel tuning over two ranks applies the updates of one process", "[tune][distributed]") {
  auto files = cc::testing::stories_files({"text/c4/c4_validation_2k.jsonl"});
  if (!files) return;
  auto tokenizer = cc::load_tokenizer(files->tokenizer);
  cc::QuantRecipe recipe = cc::load_recipe("w8a8-per-tensor-static");
  recipe.calibration.windows.samples = 4;
  recipe.calibration.windows.seq_len = 64;
  const auto calibration = cc::build_calibration_set(*tokenizer, recipe.calibration, 510, cc::BosPolicy::kNo);
  cc::TuningOptions options;
  options.windows.samples = 6;  // batches of 4 and 2: the ranks' shares differ in the first
  options.windows.seq_len = 64;
  options.batch_size = 4;
  options.epochs = 2;
  options.lr = 1e-2;
  // Adam's first steps move every element by about lr * sign(g): an element whose exact
  // gradient is zero would take the sign of its rounding error, which the summation
  // order decides. A large eps makes the update proportional to the gradient instead, so
  // the comparison measures the data-parallel sum, not that amplification. What remains
  // is float summation order, and the fake quantizers' rounding, where a value that moves
  // by an ulp can cross a rounding boundary: agreement to about 1e-5 relative.
  options.eps = 1e-2;
  options.grad_clip = 0;

  auto tune = [&](cc::CausalLM& model, cc::ProcessGroup* group) {
    const cc::KVCache prefix = cc::compute_kv_cache(model, {1});
    cc::QuantizedModel quantized(model, recipe, &calibration, &prefix);
    cc::RunContext context;
    context.group = group;
    return cc::QuantAwarePrefixTuner(model, *tokenizer, options, context).tune(*quantized.prefix());
  };
  auto alone = cc::load_model(files->bin);
  const cc::TuningResult expected = tune(*alone, nullptr);

  cc::testing::ThreadRanks ranks(2);
  std::vector<std::unique_ptr<cc::CausalLM>> models;
  for (int r = 0; r < 2; ++r) models.push_back(cc::load_model(files->bin));
  std::vector<cc::TuningResult> results(2);
  ranks.run([&](int r) {
    auto group = ranks.rank(r);
    results[static_cast<std::size_t>(r)] = tune(*models[static_cast<std::size_t>(r)], group.get());
  });
  for (const cc::TuningResult& got : results) {
    CHECK(got.loss_before == Approx(expected.loss_before).epsilon(1e-6));
    REQUIRE(got.log.size() == expected.log.size());
    for (std::size_t i = 0; i < got.log.size(); ++i) {
      CHECK(got.log[i].loss == Approx(expected.log[i].loss).epsilon(1e-4));
      CHECK(got.log[i].grad_norm == Approx(expected.log[i].grad_norm).epsilon(1e-3));
    }
    double worst = 0, scale = 0;
    for (std::size_t l = 0; l < got.prefix.layers.size(); ++l) {
      worst = std::max(worst, cc::testing::max_abs_diff(got.prefix.layers[l].key, expected.prefix.layers[l].key));
      worst = std::max(worst, cc::testing::max_abs_diff(got.prefix.layers[l].value, expected.prefix.layers[l].value));
      scale = std::max(scale, expected.prefix.layers[l].key.abs().max().item<double>());
    }
    INFO("max |prefix difference| " << worst << " of max |K| " << scale);
    CHECK(worst <= 1e-4 * scale);
  }
  CHECK(cc::testing::max_abs_diff(results[0].prefix.layers[0].key, results[1].prefix.layers[0].key) == 0.0);
}

TEST_CASE("each rank of a machine takes the GPU its LOCAL_RANK names", "[distributed]") {
  struct LocalRank {
    explicit LocalRank(const char* value) { value ? setenv("LOCAL_RANK", value, 1) : unsetenv("LOCAL_RANK"); }
    ~LocalRank() { unsetenv("LOCAL_RANK"); }
  };
  {
    const LocalRank rank("3");
    CHECK(cc::device_for_rank(c10::Device("cuda")) == c10::Device(c10::kCUDA, 3));
    CHECK(cc::device_for_rank(c10::Device("cuda:1")) == c10::Device(c10::kCUDA, 1));  // an explicit index wins
    CHECK(cc::device_for_rank(c10::Device("cpu")) == c10::Device(c10::kCPU));
  }
  {
    const LocalRank alone(nullptr);
    CHECK(cc::device_for_rank(c10::Device("cuda")) == c10::Device("cuda"));
  }
  {
    const LocalRank bad("two");
    cc::testing::expect_error([] { cc::device_for_rank(c10::Device("cuda")); }, cc::ErrorKind::kInvalidConfig, {"LOCAL_RANK='two'"});
  }
}

TEST_CASE("a distributed backend this build or machine cannot run is refused before joining, naming why", "[distributed]") {
  // Set for the test only: a two-rank job whose rendezvous nobody serves, so a backend
  // that tried to join would wait out the timeout instead of failing at once.
  struct Environment {
    Environment() {
      setenv("WORLD_SIZE", "2", 1);
      setenv("RANK", "1", 1);
      setenv("MASTER_PORT", "1", 1);
    }
    ~Environment() {
      unsetenv("WORLD_SIZE");
      unsetenv("RANK");
      unsetenv("MASTER_PORT");
    }
  };
  const Environment two_ranks;
  const auto join = [](cc::DistBackend backend, const char* device) {
    return [=] { cc::process_group_from_environment(std::chrono::seconds(1), backend, c10::Device(device)); };
  };
  CHECK(cc::parse_dist_backend("nccl") == cc::DistBackend::kNccl);
  cc::testing::expect_error([] { cc::parse_dist_backend("mpi"); }, cc::ErrorKind::kInvalidArgument, {"'mpi'", "auto, gloo or nccl"});
  // NCCL reduces GPU memory: a CPU rank cannot use it, whatever the build.
  cc::testing::expect_error(join(cc::DistBackend::kNccl, "cpu"), cc::ErrorKind::kUnsupported,
                            {"over nccl", cc::nccl_available() ? "this rank's device is cpu" : "needs a CUDA-enabled LibTorch"});
  if (!cc::nccl_available() || !at::hasCUDA())
    cc::testing::expect_error(join(cc::DistBackend::kNccl, "cuda"), cc::ErrorKind::kUnsupported,
                              {"over nccl", cc::nccl_available() ? "has none visible" : "needs a CUDA-enabled LibTorch"});
  if (!cc::gloo_available())
    cc::testing::expect_error(join(cc::DistBackend::kAuto, "cpu"), cc::ErrorKind::kUnsupported, {"over gloo", "no Gloo process group"});
  CHECK(cc::multi_process_available() == (cc::gloo_available() || cc::nccl_available()));
}
