// The prefix search: pruning selects exactly what exhaustive search selects, on the real
// stories260K model, on it with a planted sink and on SmolLM2; the planted sink token is
// found; a search stopped midway resumes to the same result; and the staged forward the
// search runs (enter_block, then run_block) is the plain forward.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>
#include <c10/core/GradMode.h>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "cushioncache/analysis/planted_sink.h"
#include "cushioncache/core/data_dir.h"
#include "cushioncache/core/files.h"
#include "cushioncache/core/memory_usage.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/search/prefix_searcher.h"
#include "support/test_support.h"

namespace cc = cushioncache;

namespace {

std::optional<cc::testing::StoriesModel> stories() { return cc::testing::load_stories({"text/c4/c4_validation_2k.jsonl"}); }

// stories260K's tokenizer: the delimiters "." "," "!" "?" are 426, 432, 443, 450; the sink
// is the byte token <0x01> (id 4), a control byte no text contains, so only a prefix can
// switch the outliers off.
constexpr std::int64_t kSinkToken = 4;
cc::PlantedSinkOptions planted_sink() {
  cc::PlantedSinkOptions o;
  o.sink_token = kSinkToken;
  o.trigger_tokens = {426, 432, 443, 450};
  return o;
}

cc::SearchOptions small_search() {
  cc::SearchOptions o;
  o.seed_prefix = {1};  // BOS
  o.max_length = 3;
  o.text_tokens = 128;
  o.batch_size = 48;
  return o;
}

}  // namespace

TEST_CASE("pruned search scores the same winner as exhaustive search", "[search]") {
  auto s = stories();
  if (!s) return;
  for (bool planted : {false, true}) {
    DYNAMIC_SECTION((planted ? "planted sink" : "stories260K")) {
      cc::HookHandle plant;
      if (planted) plant = s->model->add_hook(std::make_shared<cc::PlantedSinkHook>(planted_sink()));
      cc::SearchOptions exhaustive = small_search();
      exhaustive.prune = false;
      cc::SearchOptions pruned = small_search();
      const auto text = s->tokenizer->encode(cc::read_file(*cc::testing::data_file("text/wikitext-2-raw/wiki.test.raw")).substr(0, 4000),
                                             cc::BosPolicy::kNo);
      const std::vector<std::int64_t> window(text.begin(), text.begin() + 128);
      cc::PrefixSearcher a(*s->model, *s->tokenizer, exhaustive), b(*s->model, *s->tokenizer, pruned);
      const cc::SearchStep full = a.score_step({1}, window);
      const cc::SearchStep fast = b.score_step({1}, window);
      CHECK(full.candidates == 509);  // 512 tokens minus <unk>, <s>, </s>
      CHECK(full.top.size() == 509);
      CHECK(fast.best_token == full.best_token);
      CHECK(fast.best_score == Approx(full.best_score).epsilon(1e-9));
      CHECK(fast.prefix_score == Approx(full.prefix_score).epsilon(1e-12));
      CHECK(fast.blocks_evaluated < full.blocks_evaluated);
      CHECK(full.blocks_evaluated == full.blocks_exhaustive);
      // The exhaustive ranking's head is what pruning kept.
      CHECK(fast.top.front().first == full.top.front().first);
      if (planted) CHECK(full.best_token == kSinkToken);
    }
  }
}

TEST_CASE("pruned search on SmolLM2 picks the token and the scores of exhaustive search", "[search][model]") {
  const auto path = cc::model_dir() / "SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) {
    cc::testing::skip_test(path.string() + " not found (set CC_MODEL_DIR; scripts/fetch_models.sh)");
    return;
  }
  auto model = cc::load_model(path);
  auto tokenizer = cc::load_tokenizer(path);
  const auto text = tokenizer->encode("The quick brown fox jumps over the lazy dog.\nIt was a sunny day, and the children were playing outside.",
                                      cc::BosPolicy::kNo);
  cc::SearchOptions options;
  options.seed_prefix = {*tokenizer->bos_id()};
  options.max_length = 2;
  options.text_tokens = static_cast<std::int64_t>(text.size());
  // The text's own tokens and a few delimiters: the tokens most likely to take the sink role.
  options.candidates = text;
  for (const char* d : {".", ",", "\n", "\n\n", ":", "!"})
    for (auto t : tokenizer->encode(d, cc::BosPolicy::kNo)) options.candidates.push_back(t);
  // tau = 1: every candidate that lowers L(prefix) may be chosen, so the bound is the best
  // complete score (the incumbent), not the threshold, and the best token must come out.
  options.tau = 1.0;
  // The same batch for both, so that only pruning's row removal differs: batch 1 against
  // 16 moves scores by float32 summation order (about 1e-7 relative, bench_search).
  cc::SearchOptions exhaustive = options;
  exhaustive.prune = false;
  cc::PrefixSearcher a(*model, *tokenizer, exhaustive), b(*model, *tokenizer, options);
  const cc::SearchStep full = a.score_step(options.seed_prefix, text);
  const cc::SearchStep fast = b.score_step(options.seed_prefix, text);
  REQUIRE(full.best_token >= 0);
  CHECK(fast.best_token == full.best_token);
  CHECK(fast.best_score == Approx(full.best_score).epsilon(1e-9));
  CHECK(fast.prefix_score == Approx(full.prefix_score).epsilon(1e-12));
  CHECK(full.blocks_evaluated == full.blocks_exhaustive);
  CHECK(fast.blocks_evaluated < full.blocks_evaluated);
  // Every score pruning completed is the exhaustive score of that token.
  std::map<std::int64_t, double> exact(full.top.begin(), full.top.end());
  REQUIRE(exact.size() == static_cast<std::size_t>(full.candidates));
  for (const auto& [token, score] : fast.top) CHECK(score == Approx(exact.at(token)).epsilon(1e-9));
}

TEST_CASE("enter_block then run_block is the plain forward, each block input reported once", "[search][model]") {
  auto s = stories();
  if (!s) return;
  struct CountInputs : cc::ActivationHook {
    std::vector<int> seen;
    at::Tensor on_activation(const cc::SiteContext& ctx, const at::Tensor& x) override {
      if (ctx.site == cc::Site::kBlockInput) seen.push_back(ctx.layer);
      return ctx.site == cc::Site::kBlockInput ? x * 1.5 : x;  // a replacement, to see it applied once
    }
  };
  auto hook = std::make_shared<CountInputs>();
  cc::HookHandle handle = s->model->add_hook(hook);
  const at::Tensor ids = cc::testing::ids_tensor(cc::testing::random_ids(24, 512, 7));
  c10::NoGradGuard no_grad;
  const at::Tensor expected = s->model->forward(ids).logits;
  const std::vector<int> plain = hook->seen;
  hook->seen.clear();
  cc::ForwardState state = s->model->prepare(ids, {});
  at::Tensor hidden = s->model->embed(ids, state);
  for (int l = 0; l < s->model->config().num_layers; ++l) {
    if (l % 2 == 0) hidden = s->model->enter_block(l, hidden, state);  // every other block entered ahead
    hidden = s->model->run_block(l, hidden, state);
  }
  CHECK(hook->seen == plain);
  CHECK(cc::testing::max_abs_diff(s->model->head(hidden, false), expected) == 0.0);
  cc::testing::expect_error([&] { s->model->enter_block(-1, hidden, state); }, cc::ErrorKind::kInvalidArgument, {"enter_block", "-1"});
}

TEST_CASE("max_memory lowers the candidate batch to what fits, and the choice stays the same", "[search][memory]") {
  auto s = stories();
  if (!s) return;
  cc::SearchOptions bounded = small_search();
  const std::int64_t per_candidate = cc::candidate_working_bytes(*s->model, bounded.max_length - 1, bounded.text_tokens, 4);
  // Larger with a longer prefix and with more text: attention scores grow with both.
  CHECK(cc::candidate_working_bytes(*s->model, 7, 128, 4) > per_candidate);
  CHECK(cc::candidate_working_bytes(*s->model, 2, 256, 4) > 2 * per_candidate);
  bounded.max_memory = 3 * per_candidate + per_candidate / 2;
  cc::PrefixSearcher a(*s->model, *s->tokenizer, small_search()), b(*s->model, *s->tokenizer, bounded);
  CHECK(a.options().batch_size == 48);
  CHECK(b.options().batch_size == 3);
  const auto text = s->tokenizer->encode("Once upon a time, there was a little girl named Lily. She loved to play outside. One day she saw a big dog.",
                                         cc::BosPolicy::kNo);
  const cc::SearchStep wide = a.score_step({1}, text), narrow = b.score_step({1}, text);
  CHECK(narrow.best_token == wide.best_token);
  CHECK(narrow.best_score == Approx(wide.best_score).epsilon(1e-5));  // other batch shapes, other float32 summation orders
  // A budget above the requested batch changes nothing; one below a single candidate is refused.
  bounded.max_memory = 1000 * per_candidate;
  CHECK(cc::PrefixSearcher(*s->model, *s->tokenizer, bounded).options().batch_size == 48);
  bounded.max_memory = per_candidate / 2;
  cc::testing::expect_error([&] { cc::PrefixSearcher(*s->model, *s->tokenizer, bounded); }, cc::ErrorKind::kInvalidConfig,
                            {"max_memory", "less than one candidate"});
}

TEST_CASE("memory sizes parse as users write them", "[memory]") {
  CHECK(cc::parse_byte_size("4096", "x") == 4096);
  CHECK(cc::parse_byte_size("512K", "x") == 512 * 1024);
  CHECK(cc::parse_byte_size("1.5 GiB", "x") == 3 * (std::int64_t{1} << 29));
  CHECK(cc::parse_byte_size("2gb", "x") == 2 * (std::int64_t{1} << 30));
  CHECK(cc::parse_byte_size("64MiB", "x") == 64 * (std::int64_t{1} << 20));
  for (const char* bad : {"", "GiB", "-1G", "0", "12QB", "nan", "1e30T"})
    cc::testing::expect_error([&] { cc::parse_byte_size(bad, "--max-memory"); }, cc::ErrorKind::kInvalidArgument, {"--max-memory"});
  CHECK(cc::format_bytes(3 * (std::int64_t{1} << 29)) == "1.50 GiB");
  CHECK(cc::format_bytes(512) == "512 B");
}

TEST_CASE("the search finds the planted sink token and stops", "[search]") {
  auto s = stories();
  if (!s) return;
  cc::HookHandle plant = s->model->add_hook(std::make_shared<cc::PlantedSinkHook>(planted_sink()));
  cc::SearchOptions options = small_search();
  options.max_length = 4;
  cc::PrefixSearcher searcher(*s->model, *s->tokenizer, options);
  const cc::SearchResult result = searcher.run();
  REQUIRE(result.prefix.size() >= 2);
  CHECK(result.prefix[0] == 1);
  CHECK(result.prefix[1] == kSinkToken);
  CHECK(result.steps.front().accepted);
  CHECK(result.steps.front().best_score < 0.5 * result.steps.front().prefix_score);
  CHECK_FALSE(result.stop_reason.empty());

  cc::testing::TempDir dir;
  // With a tau no candidate reaches, pruning drops them all: the step has no best token
  // (its score is saved as null) and the finished state must still reload.
  options.tau = 1e-9;
  cc::RunContext context;
  context.state_file = (dir / "strict.json").string();
  const cc::SearchResult strict = cc::PrefixSearcher(*s->model, *s->tokenizer, options, context).run();
  REQUIRE(strict.steps.size() == 1);
  CHECK(strict.steps[0].best_token == -1);
  CHECK_THAT(strict.stop_reason, Catch::Contains("all pruned"));
  context.resume = true;
  const cc::SearchResult reloaded = cc::PrefixSearcher(*s->model, *s->tokenizer, options, context).run();
  CHECK(reloaded.prefix == strict.prefix);
  CHECK(reloaded.stop_reason == strict.stop_reason);
  CHECK(reloaded.steps[0].best_token == -1);
}

TEST_CASE("a search resumes from its state file to the same prefix", "[search]") {
  auto s = stories();
  if (!s) return;
  cc::testing::TempDir dir;
  cc::SearchOptions options = small_search();
  options.tau = 0.99;       // accept nearly anything, so several steps run
  options.max_length = 3;
  cc::RunContext context;
  context.state_file = (dir / "search.json").string();
  const cc::SearchResult uninterrupted = cc::PrefixSearcher(*s->model, *s->tokenizer, options, context).run();
  REQUIRE(uninterrupted.steps.size() >= 2);

  // A state file cut after the first step, as a kill would leave it.
  auto saved = nlohmann::json::parse(cc::read_file(context.state_file));
  auto& steps = saved["result"]["steps"];
  steps.erase(steps.begin() + 1, steps.end());
  saved["result"]["prefix"] = std::vector<std::int64_t>{1, uninterrupted.prefix[1]};
  saved["result"]["stop_reason"] = "";
  std::ofstream(context.state_file) << saved.dump();
  context.resume = true;
  const cc::SearchResult resumed = cc::PrefixSearcher(*s->model, *s->tokenizer, options, context).run();
  CHECK(resumed.prefix == uninterrupted.prefix);
  CHECK(resumed.steps.size() == uninterrupted.steps.size());

  options.tau = 0.5;  // other settings: the state file is refused
  cc::testing::expect_error([&] { cc::PrefixSearcher(*s->model, *s->tokenizer, options, context).run(); }, cc::ErrorKind::kMismatch,
                            {"search.json", "other settings"});
}

namespace {
// Poisons the residual stream of block 2 wherever `token` is the first input token.
struct NanBehindToken : cc::ActivationHook {
  std::int64_t token;
  explicit NanBehindToken(std::int64_t t) : token(t) {}
  at::Tensor on_activation(const cc::SiteContext& ctx, const at::Tensor& x) override {
    if (ctx.site != cc::Site::kBlockInput || ctx.layer != 2 || !ctx.input_ids.defined()) return x;
    const at::Tensor rows = ctx.input_ids.select(1, 0).eq(token).to(x.device()).view({-1, 1, 1});
    return at::where(rows, at::full_like(x, std::numeric_limits<float>::quiet_NaN()), x);
  }
};
}  // namespace

TEST_CASE("NaN activations behind one candidate stop the search naming the token and block", "[search]") {
  auto s = stories();
  if (!s) return;
  cc::HookHandle poison = s->model->add_hook(std::make_shared<NanBehindToken>(300));
  cc::SearchOptions options = small_search();
  options.max_length = 2;
  for (bool prune : {true, false}) {
    options.prune = prune;
    cc::testing::expect_error([&] { cc::PrefixSearcher(*s->model, *s->tokenizer, options).run(); }, cc::ErrorKind::kNumerical,
                              {"block 2", "candidate token 300"});
  }
}
