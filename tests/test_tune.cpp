// Quantization-aware prefix tuning and the artifact: on stories260K with the planted sink
// and per-tensor static W8A8, tuning lowers the loss; an interrupted run resumes to the
// same prefix; artifacts round-trip and refuse a different model.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>

#include <fmt/format.h>

#include "cushioncache/analysis/planted_sink.h"
#include "cushioncache/artifact/artifact.h"
#include "cushioncache/core/files.h"
#include "cushioncache/io/safetensors.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/pipeline/prefix_artifacts.h"
#include "cushioncache/quant/quantize_model.h"
#include "cushioncache/quant/recipe.h"
#include "cushioncache/tune/prefix_tuner.h"
#include "support/test_support.h"

namespace cc = cushioncache;

namespace {

struct Setup {
  std::filesystem::path bin;
  std::unique_ptr<cc::Tokenizer> tokenizer;
};
std::optional<Setup> setup() {
  auto files = cc::testing::stories_files({"text/c4/c4_validation_2k.jsonl"});
  if (!files) return std::nullopt;
  return Setup{files->bin, cc::load_tokenizer(files->tokenizer)};
}

cc::TuningOptions small_tuning() {
  cc::TuningOptions o;
  o.windows.samples = 8;
  o.windows.seq_len = 64;
  o.batch_size = 4;
  o.epochs = 3;
  o.lr = 1e-2;
  return o;
}

// Raises SIGINT at the n-th forward pass, as Ctrl-C would.
struct InterruptAt : cc::ActivationHook {
  int remaining;
  explicit InterruptAt(int n) : remaining(n) {}
  at::Tensor on_activation(const cc::SiteContext& ctx, const at::Tensor& x) override {
    if (ctx.layer == 0 && ctx.site == cc::Site::kBlockInput && --remaining == 0) std::raise(SIGINT);
    return x;
  }
};

}  // namespace

TEST_CASE("prefix tuning lowers the loss of the quantized model", "[tune]") {
  auto s = setup();
  if (!s) return;
  auto model = cc::load_model(s->bin);
  cc::PlantedSinkOptions plant;
  plant.sink_token = 4;
  plant.trigger_tokens = {426, 432, 443, 450};
  cc::HookHandle planted = model->add_hook(std::make_shared<cc::PlantedSinkHook>(plant));
  const cc::KVCache prefix = cc::compute_kv_cache(*model, {1, 4});
  cc::QuantRecipe recipe = cc::load_recipe("w8a8-per-tensor-static");
  recipe.calibration.windows.samples = 8;
  recipe.calibration.windows.seq_len = 64;
  const auto calibration = cc::build_calibration_set(*s->tokenizer, recipe.calibration, 510, cc::BosPolicy::kNo);
  cc::QuantizedModel quantized(*model, recipe, &calibration, &prefix);

  cc::QuantAwarePrefixTuner tuner(*model, *s->tokenizer, small_tuning());
  const cc::TuningResult result = tuner.tune(*quantized.prefix());
  CHECK(result.loss_after < result.loss_before);
  CHECK(result.log.size() == 6);  // 3 epochs x 2 batches
  for (const auto& e : result.log) {
    CHECK(std::isfinite(e.loss));
    CHECK(e.loss == Approx(e.cross_entropy + 0.01 * e.quant_error));
    CHECK(e.grad_norm > 0);
  }
  // The tuned prefix is a new KV of the same shape; the weights did not move.
  REQUIRE(result.prefix.layers.size() == 5);
  CHECK(result.prefix.length() == 2);
  CHECK(cc::testing::max_abs_diff(result.prefix.layers[3].value, quantized.prefix()->layers[3].value) > 0);
  for (auto& [name, t] : model->named_weights()) CHECK_FALSE(t->requires_grad());
}

TEST_CASE("interrupted tuning resumes from its checkpoint to the same prefix", "[tune]") {
  auto s = setup();
  if (!s) return;
  cc::testing::TempDir dir;
  auto model = cc::load_model(s->bin);
  const cc::KVCache prefix = cc::compute_kv_cache(*model, {1});
  cc::TuningOptions options = small_tuning();
  options.checkpoint_every = 1;
  cc::RunContext context;
  context.state_file = (dir / "tune.safetensors").string();
  const cc::TuningResult uninterrupted = cc::QuantAwarePrefixTuner(*model, *s->tokenizer, options, context).tune(prefix);
  std::filesystem::remove(context.state_file);

  {
    // evaluate() runs 2 forwards before training; stop during the 3rd training step.
    cc::HookHandle stop = model->add_hook(std::make_shared<InterruptAt>(2 + 3));
    cc::QuantAwarePrefixTuner tuner(*model, *s->tokenizer, options, context);
    cc::testing::expect_error([&] { tuner.tune(prefix); }, cc::ErrorKind::kInterrupted, {"prefix tuning", "state is saved"});
  }
  REQUIRE(std::filesystem::exists(context.state_file));
  context.resume = true;
  const cc::TuningResult resumed = cc::QuantAwarePrefixTuner(*model, *s->tokenizer, options, context).tune(prefix);
  CHECK(resumed.log.size() == uninterrupted.log.size());
  // Bit-exact: the parameters and Adam's moments and step counts come back from the
  // checkpoint as they were, and the rest of the run takes the same windows in the same order.
  for (std::size_t l = 0; l < 5; ++l) {
    CHECK(at::equal(resumed.prefix.layers[l].key, uninterrupted.prefix.layers[l].key));
    CHECK(at::equal(resumed.prefix.layers[l].value, uninterrupted.prefix.layers[l].value));
  }
  CHECK(resumed.loss_after == uninterrupted.loss_after);

  // A checkpoint whose optimizer state is damaged is named, not half-loaded.
  {
    const cc::SafetensorsFile saved = cc::SafetensorsFile::open(context.state_file);
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& name : saved.names())
      tensors.emplace_back(name, name == "optimizer" ? at::zeros({16}, at::kByte) : saved.load(name).clone());
    cc::write_safetensors(dir / "damaged.safetensors", tensors, saved.metadata());
  }
  context.state_file = (dir / "damaged.safetensors").string();
  cc::testing::expect_error([&] { cc::QuantAwarePrefixTuner(*model, *s->tokenizer, options, context).tune(prefix); },
                            cc::ErrorKind::kCorruptInput, {"damaged.safetensors", "optimizer state"});
}

TEST_CASE("artifacts round-trip and refuse a different model", "[artifact]") {
  auto s = setup();
  if (!s) return;
  cc::testing::TempDir dir;
  auto model = cc::load_model(s->bin);
  cc::Artifact a = cc::make_token_artifact(*model, "bos", {1});
  a.ranges["layers.0.attn_input.min"] = at::tensor({-1.5}, at::kFloat);
  a.info["note"] = "round trip";
  cc::save_artifact(a, dir / "bos.safetensors");

  const cc::Artifact b = cc::load_artifact(dir / "bos.safetensors", *model);
  CHECK(b.kind == "bos");
  CHECK(b.tokens == std::vector<std::int64_t>{1});
  CHECK(b.prefix.tokens.defined());
  CHECK(b.info["note"] == "round trip");
  CHECK(b.ranges.at("layers.0.attn_input.min").item<double>() == -1.5);
  for (std::size_t l = 0; l < 5; ++l) CHECK(at::equal(b.prefix.layers[l].key, a.prefix.layers[l].key));

  // A model with one changed weight is another model.
  auto other = cc::load_model(s->bin);
  for (auto& [name, t] : other->named_weights())
    if (name == "model.layers.2.mlp.up_proj.weight") *t = *t * 1.01;
  cc::testing::expect_error([&] { cc::load_artifact(dir / "bos.safetensors", *other); }, cc::ErrorKind::kMismatch,
                            {"bos.safetensors", "different model", "weights"});
  // And a file that is not an artifact is named as such.
  cc::write_safetensors(dir / "plain.safetensors", {{"x", at::ones({2})}});
  cc::testing::expect_error([&] { cc::load_artifact(dir / "plain.safetensors"); }, cc::ErrorKind::kCorruptInput,
                            {"plain.safetensors", "not a CushionCache artifact"});
}

TEST_CASE("search and tuning write byte-identical artifacts from the same settings", "[tune][artifact]") {
  auto s = setup();
  if (!s) return;
  cc::testing::TempDir dir;
  const cc::ModelFactory load = [&] { return cc::load_model(s->bin); };
  cc::SearchOptions search;
  search.seed_prefix = {1};
  search.max_length = 2;
  search.text_tokens = 64;
  search.tau = 0.99;  // accept the step, so the artifact holds a searched token
  cc::QuantRecipe recipe = cc::load_recipe("w8a8-per-tensor-static");
  recipe.calibration.windows.samples = 4;
  recipe.calibration.windows.seq_len = 128;
  std::vector<std::string> bytes;
  for (int run = 0; run < 2; ++run) {
    auto model = load();
    const cc::Artifact searched = cc::search_prefix_artifact(*model, *s->tokenizer, search);
    REQUIRE(searched.tokens.size() == 2);
    const cc::Artifact tuned = cc::tune_prefix_artifact(load, *s->tokenizer, searched, recipe, small_tuning());
    const auto path = dir / fmt::format("run{}.safetensors", run);
    cc::save_artifact(tuned, path);
    bytes.push_back(cc::read_file(path));
  }
  CHECK(bytes[0].size() == bytes[1].size());
  const bool identical = bytes[0] == bytes[1];  // a bool: Catch would print both files
  CHECK(identical);
}
