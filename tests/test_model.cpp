// The LLaMA-family model: checkpoints in the real Hugging Face layout written by the
// tests, checked against an independent float64 implementation and against the
// invariants the method relies on (a cached prefix changes nothing, incremental decoding
// and padded batches agree with plain forwards).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cushioncache/core/files.h"
#include "cushioncache/io/safetensors.h"
#include "cushioncache/model/causal_lm.h"
#include "cushioncache/model/llama.h"
#include "cushioncache/model/loader.h"
#include "support/reference_llama.h"
#include "support/test_support.h"

namespace cc = cushioncache;
using cc::testing::ids_tensor;
using cc::testing::max_abs_diff;
using cc::testing::random_ids;

namespace {

std::unique_ptr<cc::CausalLM> tiny_model(bool tied = false, std::uint64_t seed = 1) {
  return cc::build_model(cc::testing::random_weights(cc::testing::tiny_llama_config(tied), seed));
}

}  // namespace

TEST_CASE("HF-layout LLaMA checkpoints load and match a float64 reference", "[model]") {
  for (bool tied : {false, true}) {
    DYNAMIC_SECTION((tied ? "tied" : "untied") << " embeddings") {
      cc::testing::TempDir dir;
      const cc::HfWeights weights = cc::testing::random_weights(cc::testing::tiny_llama_config(tied), 7);
      cc::testing::write_hf_folder(dir.path(), weights);
      auto model = cc::load_model(dir.path());
      CHECK(model->config().num_kv_heads == 2);
      CHECK(model->config().tie_word_embeddings == tied);
      const auto ids = random_ids(19, 97, 3);
      at::Tensor logits = model->forward(ids_tensor(ids)).logits.squeeze(0);
      at::Tensor expected = cc::testing::reference_llama_logits(weights, ids);
      CHECK(max_abs_diff(logits, expected) < 1e-4);
      // The tied model really shares the head with the embedding.
      bool has_lm_head = false;
      for (auto& [name, t] : model->named_weights()) has_lm_head |= name == "lm_head.weight";
      CHECK(has_lm_head == !tied);
    }
  }
}

TEST_CASE("sharded checkpoints load the same weights as a single file", "[model]") {
  cc::testing::TempDir single, sharded;
  const cc::HfWeights weights = cc::testing::random_weights(cc::testing::tiny_llama_config(false), 11);
  cc::testing::write_hf_folder(single.path(), weights);
  cc::testing::write_hf_folder(sharded.path(), weights, 3);
  const auto ids = ids_tensor(random_ids(9, 97, 5));
  CHECK(max_abs_diff(cc::load_model(single.path())->forward(ids).logits, cc::load_model(sharded.path())->forward(ids).logits) == 0.0);
}

TEST_CASE("LLaMA-3 rope scaling, Mistral sliding window and Qwen2 biases match the reference", "[model]") {
  SECTION("llama3 rope_scaling") {
    cc::ModelConfig c = cc::testing::tiny_llama_config(false);
    c.rope_theta = 500000.0;
    c.rope_scaling.type = cc::RopeScalingType::kLlama3;
    c.rope_scaling.factor = 8.0;
    c.rope_scaling.low_freq_factor = 1.0;
    c.rope_scaling.high_freq_factor = 4.0;
    c.rope_scaling.original_max_position_embeddings = 64;  // small, so all three bands occur at head_dim 8
    const auto expected = cc::testing::reference_inverse_frequencies(c);
    at::Tensor got = cc::rope_inverse_frequencies(c);
    for (std::size_t i = 0; i < expected.size(); ++i) CHECK(got[static_cast<std::int64_t>(i)].item<double>() == Approx(expected[i]).epsilon(1e-6));
    const auto w = cc::testing::random_weights(c, 2);
    cc::testing::TempDir dir;
    cc::testing::write_hf_folder(dir.path(), w);
    const auto ids = random_ids(40, 97, 1);
    CHECK(max_abs_diff(cc::load_model(dir.path())->forward(ids_tensor(ids)).logits.squeeze(0), cc::testing::reference_llama_logits(w, ids)) < 1e-4);
  }
  SECTION("mistral sliding window") {
    cc::ModelConfig c = cc::testing::tiny_llama_config(false);
    c.model_type = "mistral";
    c.sliding_window = 5;
    const auto w = cc::testing::random_weights(c, 4);
    const auto ids = random_ids(23, 97, 8);
    auto model = cc::build_model(w);
    CHECK(max_abs_diff(model->forward(ids_tensor(ids)).logits.squeeze(0), cc::testing::reference_llama_logits(w, ids)) < 1e-4);
    // The window holds across a cached prefix too.
    auto prefix = model->forward(ids_tensor({ids.begin(), ids.begin() + 10}), {nullptr, {}, 0, true}).cache;
    cc::ForwardOptions fo;
    fo.past = &prefix;
    at::Tensor tail = model->forward(ids_tensor({ids.begin() + 10, ids.end()}), fo).logits.squeeze(0);
    CHECK(max_abs_diff(tail, cc::testing::reference_llama_logits(w, ids).narrow(0, 10, 13)) < 1e-4);
  }
  SECTION("qwen2 q/k/v biases") {
    cc::ModelConfig c = cc::testing::tiny_llama_config(true);
    c.model_type = "qwen2";
    c.attention_bias = true;
    const auto w = cc::testing::random_weights(c, 6);
    CHECK(w.tensors.count("model.layers.1.self_attn.k_proj.bias") == 1);
    CHECK(w.tensors.count("model.layers.1.self_attn.o_proj.bias") == 0);
    const auto ids = random_ids(12, 97, 9);
    CHECK(max_abs_diff(cc::build_model(w)->forward(ids_tensor(ids)).logits.squeeze(0), cc::testing::reference_llama_logits(w, ids)) < 1e-4);
  }
}

TEST_CASE("text logits with a cached prefix equal those of the full sequence", "[model][prefix]") {
  auto model = tiny_model();
  const auto prefix_ids = random_ids(4, 97, 21), text_ids = random_ids(15, 97, 22);
  std::vector<std::int64_t> full = prefix_ids;
  full.insert(full.end(), text_ids.begin(), text_ids.end());

  at::Tensor full_logits = model->forward(ids_tensor(full)).logits.narrow(1, 4, 15);
  cc::ForwardOptions make_prefix;
  make_prefix.return_cache = true;
  cc::KVCache prefix_kv = model->forward(ids_tensor(prefix_ids), make_prefix).cache;
  CHECK(prefix_kv.length() == 4);
  CHECK(prefix_kv.batch_size() == 1);
  cc::ForwardOptions with_prefix;
  with_prefix.past = &prefix_kv;
  CHECK(max_abs_diff(model->forward(ids_tensor(text_ids), with_prefix).logits, full_logits) < 1e-5);

  SECTION("a batch-1 prefix serves every row of a batch") {
    const auto other = random_ids(15, 97, 23);
    at::Tensor batch = at::cat({ids_tensor(text_ids), ids_tensor(other)}, 0);
    at::Tensor both = model->forward(batch, with_prefix).logits;
    CHECK(max_abs_diff(both.narrow(0, 0, 1), full_logits) < 1e-5);
    std::vector<std::int64_t> full_other = prefix_ids;
    full_other.insert(full_other.end(), other.begin(), other.end());
    CHECK(max_abs_diff(both.narrow(0, 1, 1), model->forward(ids_tensor(full_other)).logits.narrow(1, 4, 15)) < 1e-5);
  }
}

TEST_CASE("incremental decoding equals the full forward", "[model]") {
  auto model = tiny_model(true, 3);
  const auto ids = random_ids(12, 97, 31);
  at::Tensor full = model->forward(ids_tensor(ids)).logits;
  cc::KVCache cache;
  for (std::size_t t = 0; t < ids.size(); ++t) {
    cc::ForwardOptions fo;
    fo.past = &cache;
    fo.return_cache = true;
    auto out = model->forward(ids_tensor({ids[t]}), fo);
    cache = std::move(out.cache);
    CHECK(max_abs_diff(out.logits.squeeze(1), full.select(1, static_cast<std::int64_t>(t))) < 1e-5);
  }
  CHECK(cache.length() == 12);
}

TEST_CASE("a padded batch equals one sequence at a time", "[model]") {
  auto model = tiny_model(false, 5);
  const auto a = random_ids(10, 97, 41), b = random_ids(6, 97, 42);
  at::Tensor la = model->forward(ids_tensor(a)).logits.squeeze(0);
  at::Tensor lb = model->forward(ids_tensor(b)).logits.squeeze(0);
  for (bool left : {false, true}) {
    DYNAMIC_SECTION((left ? "left" : "right") << " padding") {
      std::vector<std::int64_t> padded_b(4, 0), mask_b(6, 1);
      if (left) {
        padded_b.insert(padded_b.end(), b.begin(), b.end());
        mask_b.insert(mask_b.begin(), 4, 0);
      } else {
        padded_b.insert(padded_b.begin(), b.begin(), b.end());
        mask_b.insert(mask_b.end(), 4, 0);
      }
      at::Tensor ids = at::cat({ids_tensor(a), ids_tensor(padded_b)}, 0);
      at::Tensor mask = at::cat({at::ones({1, 10}, at::kLong), ids_tensor(mask_b)}, 0);
      cc::ForwardOptions fo;
      fo.attention_mask = mask;
      fo.return_cache = true;
      auto out = model->forward(ids, fo);
      CHECK(max_abs_diff(out.logits.select(0, 0), la) < 1e-5);
      CHECK(max_abs_diff(out.logits.select(0, 1).narrow(0, left ? 4 : 0, 6), lb) < 1e-5);
      if (left) {
        // Decoding continues from the padded cache: the next token of b matches.
        const std::int64_t next = 17;
        auto b_next = b;
        b_next.push_back(next);
        cc::ForwardOptions step;
        step.past = &out.cache;
        at::Tensor step_logits = model->forward(at::full({2, 1}, next, at::kLong), step).logits.select(0, 1).squeeze(0);
        at::Tensor expected = model->forward(ids_tensor(b_next)).logits.squeeze(0).select(0, 6);
        CHECK(max_abs_diff(step_logits, expected) < 1e-5);
      }
    }
  }
}

TEST_CASE("float64 and float32 agree and bfloat16 runs", "[model]") {
  const auto w = cc::testing::random_weights(cc::testing::tiny_llama_config(false), 13);
  const auto ids = ids_tensor(random_ids(16, 97, 14));
  cc::LoadOptions f64;
  f64.dtype = at::kDouble;
  at::Tensor ref = cc::build_model(w, f64)->forward(ids).logits;
  CHECK(max_abs_diff(cc::build_model(w)->forward(ids).logits, ref) < 1e-4);
  cc::LoadOptions bf16;
  bf16.dtype = at::kBFloat16;
  auto model = cc::build_model(w, bf16);
  CHECK(model->dtype() == at::kBFloat16);
  at::Tensor low = model->forward(ids).logits;
  CHECK(low.scalar_type() == at::kFloat);
  CHECK(max_abs_diff(low, ref) < 0.25);  // bfloat16 keeps ~3 significant digits

  // float16 on CPU: LibTorch 1.13 has no CPU float16 matmul and must say so; newer
  // LibTorch runs it.
  cc::LoadOptions f16;
  f16.dtype = at::kHalf;
  try {
    auto half = cc::build_model(w, f16);
    CHECK(max_abs_diff(half->forward(ids).logits, ref) < 0.05);
  } catch (const cc::Error& e) {
    CHECK(e.kind() == cc::ErrorKind::kUnsupported);
    CHECK_THAT(e.what(), Catch::Matchers::Contains("float16"));
  }
}

TEST_CASE("the prefix KV carries autograd while weights stay frozen", "[model][prefix]") {
  auto model = tiny_model();
  cc::ForwardOptions make_prefix;
  make_prefix.return_cache = true;
  cc::KVCache prefix = model->forward(ids_tensor({5, 6, 7}), make_prefix).cache.detached();
  for (auto& layer : prefix.layers) {
    layer.key.requires_grad_(true);
    layer.value.requires_grad_(true);
  }
  cc::ForwardOptions fo;
  fo.past = &prefix;
  at::Tensor loss = model->forward(ids_tensor({8, 9, 10, 11}), fo).logits.logsumexp(-1).sum();
  loss.backward();
  for (const auto& layer : prefix.layers) {
    REQUIRE(layer.key.grad().defined());
    CHECK(layer.key.grad().abs().sum().item<double>() > 0);
    CHECK(layer.value.grad().abs().sum().item<double>() > 0);
  }
  for (auto& [name, t] : model->named_weights()) CHECK_FALSE(t->requires_grad());
}

namespace {
// Records every site it sees; optionally replaces one.
struct RecordingHook : cc::ActivationHook {
  std::vector<std::tuple<int, cc::Site, std::vector<std::int64_t>, at::Tensor>> seen;
  std::function<at::Tensor(const cc::SiteContext&, const at::Tensor&)> replace;
  at::Tensor on_activation(const cc::SiteContext& ctx, const at::Tensor& x) override {
    seen.emplace_back(ctx.layer, ctx.site, x.sizes().vec(), ctx.text_mask);
    return replace ? replace(ctx, x) : x;
  }
};
}  // namespace

TEST_CASE("activation sites report every block's activations and can replace them", "[model][sites]") {
  auto model = tiny_model();
  const auto ids = ids_tensor(random_ids(7, 97, 51));
  at::Tensor plain = model->forward(ids).logits;

  auto hook = std::make_shared<RecordingHook>();
  {
    cc::HookHandle handle = model->add_hook(hook);
    cc::ForwardOptions fo;
    fo.prefix_tokens = 2;
    at::Tensor observed = model->forward(ids, fo).logits;
    CHECK(max_abs_diff(observed, plain) == 0.0);  // observing changes nothing
  }
  REQUIRE(hook->seen.size() == 2 * cc::all_sites().size());
  for (const auto& [layer, site, shape, mask] : hook->seen) {
    INFO("layer " << layer << " site " << cc::site_name(site));
    CHECK(mask.sizes() == at::IntArrayRef({1, 7}));
    CHECK(mask.narrow(1, 0, 2).any().item<bool>() == false);  // the prefix tokens are not text
    CHECK(mask.narrow(1, 2, 5).all().item<bool>());
    if (site == cc::Site::kDownProjInput) CHECK(shape == std::vector<std::int64_t>{1, 7, 72});
    if (site == cc::Site::kKey) CHECK(shape == std::vector<std::int64_t>{1, 2, 7, 8});
    if (site == cc::Site::kAttnProbs) CHECK(shape == std::vector<std::int64_t>{1, 4, 7, 7});
  }
  // The handle went out of scope: the hook is gone.
  hook->seen.clear();
  model->forward(ids);
  CHECK(hook->seen.empty());

  hook->replace = [](const cc::SiteContext& ctx, const at::Tensor& x) {
    return ctx.layer == 1 && ctx.site == cc::Site::kDownProjInput ? at::zeros_like(x) : x;
  };
  cc::HookHandle handle = model->add_hook(hook);
  at::Tensor replaced = model->forward(ids).logits;
  CHECK(max_abs_diff(replaced, plain) > 1e-3);

  hook->replace = [](const cc::SiteContext&, const at::Tensor& x) { return x.narrow(-1, 0, 1); };
  cc::testing::expect_error([&] { model->forward(ids); }, cc::ErrorKind::kInvalidArgument, {"site", "returned shape"});

  // A handle that outlives its model (declared before it, so destroyed after it) has
  // nothing to remove; found by the sanitizer build, where it was a use after free.
  cc::HookHandle outliving;
  {
    auto doomed = tiny_model();
    outliving = doomed->add_hook(hook);
  }
  outliving.remove();
}

TEST_CASE("bad checkpoints and inputs fail with errors that name the culprit", "[model][errors]") {
  cc::testing::TempDir dir;
  const cc::HfWeights weights = cc::testing::random_weights(cc::testing::tiny_llama_config(false), 17);
  auto rewrite = [&](const std::function<void(cc::HfWeights&)>& edit) {
    std::filesystem::remove_all(dir.path());
    cc::HfWeights w = weights;
    edit(w);
    cc::testing::write_hf_folder(dir.path(), w);
  };

  SECTION("missing tensor") {
    rewrite([](cc::HfWeights& w) { w.tensors.erase("model.layers.1.mlp.up_proj.weight"); });
    cc::testing::expect_error([&] { cc::load_model(dir.path()); }, cc::ErrorKind::kNotFound,
                              {"model.layers.1.mlp.up_proj.weight", "model.safetensors"});
  }
  SECTION("wrong shape") {
    rewrite([](cc::HfWeights& w) { w.tensors["model.layers.0.self_attn.k_proj.weight"] = at::zeros({32, 32}); });
    cc::testing::expect_error([&] { cc::load_model(dir.path()); }, cc::ErrorKind::kMismatch,
                              {"model.layers.0.self_attn.k_proj.weight", "[32, 32]", "[16, 32]"});
  }
  SECTION("bad JSON in config.json") {
    rewrite([](cc::HfWeights&) {});
    std::ofstream(dir / "config.json") << "{\"model_type\": \"llama\", ";
    cc::testing::expect_error([&] { cc::load_model(dir.path()); }, cc::ErrorKind::kCorruptInput, {"config.json", "invalid JSON"});
  }
  SECTION("inconsistent config field") {
    rewrite([](cc::HfWeights&) {});
    nlohmann::json j = nlohmann::json::parse(cc::read_file(dir / "config.json"));
    j["num_key_value_heads"] = 3;
    std::ofstream(dir / "config.json") << j.dump();
    cc::testing::expect_error([&] { cc::load_model(dir.path()); }, cc::ErrorKind::kInvalidConfig, {"config.json", "num_key_value_heads"});
  }
  SECTION("wrong field type and unsupported family") {
    rewrite([](cc::HfWeights&) {});
    nlohmann::json j = nlohmann::json::parse(cc::read_file(dir / "config.json"));
    j["hidden_size"] = "32";
    std::ofstream(dir / "config.json") << j.dump();
    cc::testing::expect_error([&] { cc::load_model(dir.path()); }, cc::ErrorKind::kInvalidConfig, {"hidden_size", "integer"});
    j["hidden_size"] = 32;
    j["model_type"] = "gptj";
    std::ofstream(dir / "config.json") << j.dump();
    cc::testing::expect_error([&] { cc::load_model(dir.path()); }, cc::ErrorKind::kUnsupported, {"gptj"});
  }
  SECTION("missing folder and missing weights") {
    cc::testing::expect_error([&] { cc::load_model(dir / "nope"); }, cc::ErrorKind::kNotFound, {"nope"});
    rewrite([](cc::HfWeights&) {});
    std::filesystem::remove(dir / "model.safetensors");
    cc::testing::expect_error([&] { cc::load_model(dir.path()); }, cc::ErrorKind::kNotFound, {"model.safetensors"});
  }
  SECTION("inputs") {
    auto model = cc::build_model(weights);
    cc::testing::expect_error([&] { model->forward(ids_tensor({1, 97})); }, cc::ErrorKind::kInvalidArgument, {"97", "vocabulary"});
    cc::testing::expect_error([&] { model->forward(at::zeros({3}, at::kLong)); }, cc::ErrorKind::kInvalidArgument, {"[batch, length]"});
    cc::KVCache bad = model->forward(ids_tensor({1, 2}), {nullptr, {}, 0, true}).cache;
    bad.layers[1].value = bad.layers[1].value.narrow(1, 0, 1);
    cc::ForwardOptions fo;
    fo.past = &bad;
    cc::testing::expect_error([&] { model->forward(ids_tensor({3}), fo); }, cc::ErrorKind::kMismatch, {"layer 1 value", "[1, 1, 2, 8]"});
    fo.past = nullptr;
    fo.attention_mask = at::ones({1, 3}, at::kLong);
    cc::testing::expect_error([&] { model->forward(ids_tensor({3, 4}), fo); }, cc::ErrorKind::kInvalidArgument, {"attention_mask"});
  }
}

TEST_CASE("a hook on one site as a function: sees that site of every layer, and its replacement is used", "[model][hooks]") {
  auto files = cc::testing::stories_files();
  if (!files) return;
  auto model = cc::load_model(files->bin);
  c10::NoGradGuard no_grad;
  const at::Tensor tokens = at::tensor(std::vector<std::int64_t>{1, 400, 30, 87, 12}, at::kLong).unsqueeze(0);
  const at::Tensor plain = model->forward(tokens).logits;
  std::vector<int> layers;
  {
    cc::HookHandle seen = model->add_hook(cc::Site::kDownProjInput, [&](const cc::SiteContext& ctx, const at::Tensor& x) {
      CHECK(ctx.site == cc::Site::kDownProjInput);
      layers.push_back(ctx.layer);
      return x;
    });
    CHECK(at::equal(model->forward(tokens).logits, plain));  // observing changes nothing
  }
  std::vector<int> expected(static_cast<std::size_t>(model->config().num_layers));
  for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = static_cast<int>(i);
  CHECK(layers == expected);
  // Zeroing the MLP's inner activations of the last layer equals dropping its MLP: the
  // logits move, and back when the handle is gone.
  {
    const int last = static_cast<int>(model->config().num_layers) - 1;
    cc::HookHandle zero = model->add_hook(cc::Site::kDownProjInput, [last](const cc::SiteContext& ctx, const at::Tensor& x) {
      return ctx.layer == last ? at::zeros_like(x) : x;
    });
    CHECK_FALSE(at::allclose(model->forward(tokens).logits, plain));
  }
  CHECK(at::equal(model->forward(tokens).logits, plain));
  cc::testing::expect_error([&] { model->add_hook(cc::Site::kKey, cc::CausalLM::SiteFunction()); }, cc::ErrorKind::kInvalidArgument,
                            {"empty function", "key"});
}
