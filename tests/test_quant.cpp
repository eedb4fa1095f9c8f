// Quantizers against a float64 reference written out here element by element, the
// straight-through gradient, calibration, recipes, SmoothQuant folding, and W8A8 on the
// real stories260K model.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <set>
#include <nlohmann/json.hpp>

#include "cushioncache/core/files.h"
#include "cushioncache/io/corpus.h"
#include "cushioncache/kernels/int8_gemm.h"
#include "cushioncache/eval/perplexity.h"
#include "cushioncache/model/family.h"
#include "cushioncache/model/identity.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/quant/calibration.h"
#include "cushioncache/quant/fake_quant.h"
#include "cushioncache/quant/int8_linear.h"
#include "cushioncache/quant/quantize_model.h"
#include "cushioncache/quant/quantizer.h"
#include "cushioncache/quant/recipe.h"
#include "cushioncache/quant/smoothquant.h"
#include "cushioncache/tokenizer/text_windows.h"
#include "support/test_support.h"

namespace cc = cushioncache;
using cc::testing::max_abs_diff;

namespace {

// The reference: quantize-dequantize one group of values (float64), range widened to 0,
// round half to even, clamp.
std::vector<double> reference_group(const std::vector<double>& v, int bits, bool symmetric, double lo, double hi) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  double scale, zero;
  long qmin, qmax;
  if (symmetric) {
    qmin = -(1L << (bits - 1));
    qmax = (1L << (bits - 1)) - 1;
    scale = std::max(std::max(-lo, hi) / static_cast<double>(qmax), 1e-10);
    zero = 0;
  } else {
    qmin = 0;
    qmax = (1L << bits) - 1;
    scale = std::max((hi - lo) / static_cast<double>(qmax), 1e-10);
    zero = std::min<double>(qmax, std::max<double>(qmin, std::nearbyint(-lo / scale)));
  }
  std::vector<double> out;
  for (double x : v) {
    const double q = std::min<double>(qmax, std::max<double>(qmin, std::nearbyint(x / scale) + zero));
    out.push_back((q - zero) * scale);
  }
  return out;
}

// Reference for a [B, T, C] activation (dynamic ranges) or a [out, in] weight.
at::Tensor reference(const at::Tensor& x, const cc::QuantSpec& spec) {
  at::Tensor d = x.to(at::kDouble).contiguous();
  at::Tensor out = at::empty_like(d);
  const double* in = d.data_ptr<double>();
  double* res = out.data_ptr<double>();
  const std::int64_t C = d.size(-1), rows = d.numel() / C;
  auto run = [&](const std::vector<std::int64_t>& idx) {
    std::vector<double> v;
    double lo = INFINITY, hi = -INFINITY;
    for (auto i : idx) {
      v.push_back(in[i]);
      lo = std::min(lo, in[i]);
      hi = std::max(hi, in[i]);
    }
    const auto q = reference_group(v, spec.bits, spec.symmetric, lo, hi);
    for (std::size_t k = 0; k < idx.size(); ++k) res[idx[k]] = q[k];
  };
  const bool weight = spec.role == cc::QuantRole::kWeight;
  switch (spec.granularity) {
    case cc::Granularity::kPerTensor: {
      // Weights: the whole matrix; activations: each sequence (batch row) separately.
      const std::int64_t seqs = weight ? 1 : d.size(0), per = d.numel() / seqs;
      for (std::int64_t b = 0; b < seqs; ++b) {
        std::vector<std::int64_t> idx;
        for (std::int64_t i = 0; i < per; ++i) idx.push_back(b * per + i);
        run(idx);
      }
      break;
    }
    case cc::Granularity::kPerToken:
    case cc::Granularity::kPerChannel:
      if (weight || spec.granularity == cc::Granularity::kPerToken) {  // rows: weight output channels / tokens
        for (std::int64_t r = 0; r < rows; ++r) {
          std::vector<std::int64_t> idx;
          for (std::int64_t c = 0; c < C; ++c) idx.push_back(r * C + c);
          run(idx);
        }
      } else {  // activation channels, per sequence
        const std::int64_t T = d.size(1);
        for (std::int64_t b = 0; b < d.size(0); ++b)
          for (std::int64_t c = 0; c < C; ++c) {
            std::vector<std::int64_t> idx;
            for (std::int64_t t = 0; t < T; ++t) idx.push_back((b * T + t) * C + c);
            run(idx);
          }
      }
      break;
    case cc::Granularity::kPerGroup:
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t g = 0; g < C / spec.group_size; ++g) {
          std::vector<std::int64_t> idx;
          for (std::int64_t k = 0; k < spec.group_size; ++k) idx.push_back(r * C + g * spec.group_size + k);
          run(idx);
        }
      break;
  }
  return out;
}

at::Tensor random(std::vector<std::int64_t> shape, std::uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randn(shape, gen, at::kFloat) * 3.0;
}

}  // namespace

TEST_CASE("quantize-dequantize equals a float64 reference for every granularity", "[quant]") {
  for (const char* base : {"a{}-per-tensor-dynamic", "a{}-per-token-dynamic", "a{}-per-channel-dynamic", "a{}-per-group8-dynamic",
                           "w{}-per-tensor", "w{}-per-channel", "w{}-per-group8"})
    for (int bits : {4, 8})
      for (const char* sym : {"-sym", "-asym"}) {
        const std::string text = fmt::format(base, bits) + sym;
        const cc::QuantRole role = text[0] == 'w' ? cc::QuantRole::kWeight : cc::QuantRole::kActivation;
        DYNAMIC_SECTION(text) {
          const cc::QuantSpec spec = cc::parse_quant_spec(text, role);
          CHECK(cc::parse_quant_spec(spec.to_string(), role).to_string() == spec.to_string());
          at::Tensor x = role == cc::QuantRole::kWeight ? random({24, 32}, 1) : random({2, 5, 32}, 2);
          cc::UniformQuantizer q(spec, "test");
          at::Tensor got = q.quantize(x, at::Tensor());
          CHECK(max_abs_diff(got, reference(x, spec)) < 1e-5);
          // The quantized values lie on at most 2^bits levels per group.
          CHECK(got.sizes() == x.sizes());
        }
      }
}

TEST_CASE("rounding is half to even and the range edges are exact", "[quant]") {
  // Symmetric 8-bit over [-127, 127]: scale is exactly 1, so x / scale hits .5 ties.
  at::Tensor x = at::tensor({127.0, -127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 0.0}, at::kFloat).view({1, 1, -1});
  cc::UniformQuantizer q(cc::parse_quant_spec("a8-per-tensor-dynamic-sym", cc::QuantRole::kActivation), "ties");
  at::Tensor got = q.quantize(x, at::Tensor()).view({-1});
  const std::vector<double> expected = {127, -127, 0, 2, 2, -0.0, -2, -2, 126, 0};
  for (std::size_t i = 0; i < expected.size(); ++i) CHECK(got[static_cast<std::int64_t>(i)].item<double>() == expected[i]);
  // Asymmetric 4-bit over [0, 15]: 16 levels, both ends exact.
  at::Tensor y = at::arange(0, 16, at::kFloat).view({1, 1, -1});
  cc::UniformQuantizer a(cc::parse_quant_spec("a4-per-tensor-dynamic-asym", cc::QuantRole::kActivation), "edges");
  CHECK(max_abs_diff(a.quantize(y, at::Tensor()), y) < 1e-6);
}

TEST_CASE("the straight-through gradient passes inside the range and stops outside", "[quant]") {
  // Static range calibrated on [-1, 1]; later inputs reach beyond it and are clamped.
  cc::UniformQuantizer q(cc::parse_quant_spec("a8-per-tensor-static-sym", cc::QuantRole::kActivation), "ste");
  q.observe(at::tensor({-1.0, 1.0}, at::kFloat).view({1, 1, 2}), at::Tensor());
  q.freeze();
  at::Tensor x = at::tensor({-3.0, -1.0, -0.3, 0.0, 0.7, 1.0, 1.01, 5.0}, at::kFloat).view({1, 1, -1}).requires_grad_(true);
  at::Tensor y = q.quantize(x, at::Tensor());
  (y * at::arange(1, 9, at::kFloat).view({1, 1, -1})).sum().backward();
  // Inside when round(x / scale) stays within [-128, 127]: scale = 1/127, so 1.01 -> 128 is out.
  const std::vector<double> mask = {0, 1, 1, 1, 1, 1, 0, 0};
  for (std::int64_t i = 0; i < 8; ++i) CHECK(x.grad().view({-1})[i].item<double>() == mask[static_cast<std::size_t>(i)] * (i + 1));
  CHECK(y.view({-1})[0].item<double>() == Approx(-128.0 / 127));  // clamped to the lowest level
}

TEST_CASE("static calibration: estimators, and prefix and padding tokens left out", "[quant]") {
  auto spec = [](const char* s) { return cc::parse_quant_spec(s, cc::QuantRole::kActivation); };
  at::Tensor a = at::tensor({-2.0, 1.0, 0.5}, at::kFloat).view({1, 3, 1});
  at::Tensor b = at::tensor({-1.0, 4.0, 0.0}, at::kFloat).view({1, 3, 1});
  SECTION("min-max and EMA") {
    cc::UniformQuantizer minmax(spec("a8-per-tensor-static-asym-minmax"), "m");
    minmax.observe(a, at::Tensor());
    minmax.observe(b, at::Tensor());
    auto state = minmax.state();
    CHECK(state.at("min").item<double>() == -2.0);
    CHECK(state.at("max").item<double>() == 4.0);
    cc::UniformQuantizer ema(spec("a8-per-tensor-static-asym-ema0.75"), "e");
    ema.observe(a, at::Tensor());
    ema.observe(b, at::Tensor());
    CHECK(ema.state().at("min").item<double>() == Approx(0.75 * -2.0 + 0.25 * -1.0));
    CHECK(ema.state().at("max").item<double>() == Approx(0.75 * 1.0 + 0.25 * 4.0));
  }
  SECTION("percentile") {
    cc::UniformQuantizer pct(spec("a8-per-tensor-static-sym-pct90"), "p");
    at::Tensor values = at::arange(1, 101, at::kFloat).view({1, 100, 1});  // 1..100
    pct.observe(values, at::Tensor());
    CHECK(pct.state().at("max").item<double>() == 90.0);  // the 90th of 100 sorted values
    CHECK(pct.state().at("min").item<double>() == 10.0);
  }
  SECTION("per-channel static ranges") {
    cc::UniformQuantizer ch(spec("a8-per-channel-static-asym"), "c");
    ch.observe(at::tensor({1.0, -5.0, 3.0, 2.0}, at::kFloat).view({1, 2, 2}), at::Tensor());
    CHECK(at::equal(ch.state().at("min"), at::tensor({1.0, -5.0}, at::kFloat)));
    CHECK(at::equal(ch.state().at("max"), at::tensor({3.0, 2.0}, at::kFloat)));
  }
  SECTION("masked tokens neither widen the range nor get quantized") {
    cc::UniformQuantizer q(spec("a8-per-tensor-static-asym"), "masked");
    at::Tensor x = at::tensor({1000.0, 1.0, -1.0, 0.25}, at::kFloat).view({1, 4, 1});
    at::Tensor mask = at::tensor({0, 1, 1, 1}, at::kLong).to(at::kBool).view({1, 4});  // position 0: the prefix
    q.observe(x, mask);
    q.freeze();
    CHECK(q.state().at("max").item<double>() == 1.0);
    at::Tensor y = q.quantize(x, mask);
    CHECK(y.view({-1})[0].item<double>() == 1000.0);  // passed through in full precision
    CHECK(std::abs(y.view({-1})[3].item<double>() - 0.25) < 2.0 / 255);
  }
  SECTION("NaN during calibration is an error") {
    cc::UniformQuantizer q(spec("a8-per-tensor-static-asym"), "layers.2.down_proj_input");
    cc::testing::expect_error([&] { q.observe(at::tensor({NAN, 1.0}, at::kFloat).view({1, 2, 1}), at::Tensor()); },
                              cc::ErrorKind::kNumerical, {"layers.2.down_proj_input", "NaN"});
    cc::testing::expect_error([&] { q.quantize(a, at::Tensor()); }, cc::ErrorKind::kInvalidArgument, {"before calibration"});
  }
}

TEST_CASE("quantization specs and recipes are checked, by name and line", "[quant][errors]") {
  using K = cc::ErrorKind;
  const auto act = cc::QuantRole::kActivation;
  CHECK(cc::parse_quant_spec("a8-per-tensor-static-asym", act).to_string() == "a8-per-tensor-static-asym-minmax");
  CHECK(cc::parse_quant_spec("w4-per-group128", cc::QuantRole::kWeight).to_string() == "w4-per-group128-sym");
  CHECK_FALSE(cc::parse_quant_spec("off", act).enabled());
  cc::testing::expect_error([&] { cc::parse_quant_spec("a8-per-tensr", act); }, K::kInvalidConfig, {"per-tensr"});
  cc::testing::expect_error([&] { cc::parse_quant_spec("a9-per-tensor", act); }, K::kInvalidConfig, {"bits = 9"});
  // Found by fuzz_recipe: a bit width or group size beyond any integer was cast into garbage.
  cc::testing::expect_error([&] { cc::parse_quant_spec("w7777777777777777777777777777777774-per-group64-sym", cc::QuantRole::kWeight); },
                            K::kInvalidConfig, {"whole number", "w7777"});
  cc::testing::expect_error([&] { cc::parse_quant_spec("w4-per-group1e30-sym", cc::QuantRole::kWeight); }, K::kInvalidConfig,
                            {"whole number", "group1e30"});
  cc::testing::expect_error([&] { cc::parse_quant_spec("a8.5-per-tensor", act); }, K::kInvalidConfig, {"whole number"});
  cc::testing::expect_error([&] { cc::parse_quant_spec("a8-per-token-static", act); }, K::kInvalidConfig, {"per-token", "dynamic"});
  cc::testing::expect_error([&] { cc::parse_quant_spec("a8-per-tensor-fast", act); }, K::kInvalidConfig, {"unknown part 'fast'"});
  cc::testing::expect_error([&] { cc::parse_quant_spec("w8-per-channel-static", cc::QuantRole::kWeight); }, K::kInvalidConfig,
                            {"weights are quantized once"});

  // The paper's six, then sq-o3-all, sq-o2-all, sq-o1-all: SmoothQuant on all four linear
  // inputs, which sq-o* meant before they followed SmoothQuant's own sites (issue 23).
  CHECK(cc::preset_names().size() == 9);
  CHECK(cc::load_recipe("sq-o3").smoothquant->sites_name() == "norm");
  CHECK(cc::load_recipe("sq-o2-all").smoothquant->sites_name() == "all");
  CHECK(cc::to_json(cc::load_recipe("sq-o1")).at("smoothquant").at("sites") == "norm");
  CHECK(cc::to_json(cc::load_recipe("sq-o3-all")).at("smoothquant").at("sites") == "all");
  CHECK(cc::load_recipe("sq-o3").calibration.weights == cc::CalibrationWeights::kFloat);
  CHECK(cc::load_recipe("sq-o3").calibration.include_bos);
  CHECK(cc::load_recipe("sq-o1").smoothquant.has_value());
  CHECK(cc::load_recipe("w8a8-per-tensor-static").needs_calibration());
  CHECK_FALSE(cc::load_recipe("w8a8-per-token-dynamic").needs_calibration());
  cc::testing::expect_error([] { cc::load_recipe("w8a8"); }, K::kInvalidArgument, {"w8a8", "sq-o3"});

  cc::testing::TempDir dir;
  auto yaml = [&](const std::string& text) {
    std::ofstream(dir / "r.yaml") << text;
    return (dir / "r.yaml").string();
  };
  const cc::QuantRecipe r = cc::load_recipe(yaml(
      "name: mine\n"
      "weights: w4-per-group64-sym\n"
      "activations: {bits: 8, granularity: per-channel, mode: static, symmetric: false, estimator: percentile, percentile: 99.9}\n"
      "smoothquant: {alpha: 0.5, sites: [attn_input, mlp_input]}\n"
      "kv_cache: true\n"
      "calibration: {data: wikitext2, samples: 4, seq_len: 64}\n"));
  CHECK(r.name == "mine");
  CHECK(r.weights.to_string() == "w4-per-group64-sym");
  CHECK(r.activations.to_string() == "a8-per-channel-static-asym-pct99.9");
  CHECK(r.smoothquant->sites.size() == 2);
  CHECK(r.smoothquant->sites_name() == "norm");  // the same sites as a list
  CHECK(r.kv_cache);
  CHECK(r.calibration.windows.samples == 4);
  const cc::QuantRecipe all = cc::load_recipe(yaml(
      "activations: a8-per-tensor-static\n"
      "smoothquant: {sites: all}\n"
      "calibration: {include_bos: false, weights: quantized}\n"));
  CHECK((all.smoothquant->sites == std::vector<cc::Site>{cc::Site::kAttnInput, cc::Site::kOProjInput, cc::Site::kMlpInput,
                                                         cc::Site::kDownProjInput}));
  CHECK_FALSE(all.calibration.include_bos);
  CHECK(all.calibration.weights == cc::CalibrationWeights::kQuantized);
  CHECK(cc::to_json(all).at("calibration").at("weights") == "quantized");
  CHECK(cc::to_json(all).at("calibration").at("include_bos") == false);
  CHECK((cc::load_recipe(yaml("smoothquant: {sites: norm}\n")).smoothquant->sites == cc::smoothquant_norm_sites()));
  CHECK(cc::load_recipe(yaml("smoothquant: {sites: [o_proj_input]}\n")).smoothquant->sites_name() == "custom");
  cc::testing::expect_error([&] { cc::load_recipe(yaml("smoothquant: {sites: every}\n")); }, K::kInvalidConfig,
                            {"r.yaml:1", "smoothquant.sites", "norm, all or a list", "every"});
  cc::testing::expect_error([&] { cc::load_recipe(yaml("calibration: {weights: int8}\n")); }, K::kInvalidConfig,
                            {"r.yaml:1", "calibration.weights", "float or quantized", "int8"});
  cc::testing::expect_error([&] { cc::load_recipe(yaml("calibration: {include_bos: maybe}\n")); }, K::kInvalidConfig,
                            {"r.yaml:1", "calibration.include_bos"});
  cc::testing::expect_error([&] { cc::load_recipe(yaml("weights: w8-per-channel\nactivatons: a8-per-token\n")); }, K::kInvalidConfig,
                            {"r.yaml:2", "unknown key 'activatons'"});
  cc::testing::expect_error([&] { cc::load_recipe(yaml("activations: {bits: eight}\n")); }, K::kInvalidConfig,
                            {"r.yaml:1", "activations.bits", "integer"});
  cc::testing::expect_error([&] { cc::load_recipe(yaml("smoothquant: {alpha: 1.5}\n")); }, K::kInvalidConfig, {"alpha = 1.5"});
  cc::testing::expect_error([&] { cc::load_recipe(yaml("activations: a8-per-tensor-static\ncalibration: {samples: 0}\n")); },
                            K::kInvalidConfig, {"r.yaml:2", "'calibration.samples' must be >= 1, got 0"});
  cc::testing::expect_error([&] { cc::load_recipe(yaml("quantizer: fancy\nactivations: a8-per-token\n")); }, K::kInvalidConfig,
                            {"quantizer 'fancy'", "uniform"});
  cc::testing::expect_error([&] { cc::load_recipe(yaml("activations: [1, 2\n")); }, K::kInvalidConfig, {"r.yaml", "invalid YAML"});
  // Fuzzer findings: a mapping where a list item or a key should be a plain value escaped as
  // a yaml-cpp conversion error.
  cc::testing::expect_error([&] { cc::load_recipe(yaml("smoothquant:\n  sites: [attn_input: 9]\n")); }, K::kInvalidConfig,
                            {"r.yaml:2", "smoothquant.sites[]", "must be a string"});
  cc::testing::expect_error([&] { cc::load_recipe(yaml("? [a, b]\n: 1\n")); }, K::kInvalidConfig, {"r.yaml:1", "must be a string"});
}

TEST_CASE("SmoothQuant folding leaves the float model's function unchanged", "[quant][smoothquant]") {
  // The tiny model has grouped-query attention: the o_proj scales must be shared per
  // value head for the fold through v_proj to be exact.
  auto weights = cc::testing::random_weights(cc::testing::tiny_llama_config(false), 21);
  auto model = cc::build_model(weights);
  at::Generator gen = at::detail::createCPUGenerator(3);
  cc::CalibrationSet calibration;
  for (int i = 0; i < 4; ++i) {
    at::Tensor t = at::randint(97, {24}, gen, at::kLong);
    calibration.sequences.emplace_back(t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + 24);
  }
  const at::Tensor ids = at::randint(97, {2, 16}, gen, at::kLong);
  const at::Tensor before = model->forward(ids).logits;
  // All four sites (sq-o*-all): the fold of o_proj's scale through v_proj under grouped-
  // query attention is what this test is for, and SmoothQuant's own sites leave it out.
  const auto absmax = cc::collect_channel_absmax(*model, calibration, nullptr, cc::smoothquant_all_sites());
  CHECK(absmax.size() == 2 * 4);
  const auto scales = cc::apply_smoothquant(*model, absmax, 0.8);
  const at::Tensor after = model->forward(ids).logits;
  CHECK(max_abs_diff(after, before) / before.abs().max().item<double>() < 1e-4);
  // The scales really moved something: the norm gains changed.
  bool changed = false;
  for (auto& [name, t] : model->named_weights())
    if (name == "model.layers.0.input_layernorm.weight") changed = !at::allclose(*t, weights.tensors.at(name));
  CHECK(changed);
  // o_proj input channels sharing a value head share their scale.
  const at::Tensor s = scales.at({1, cc::Site::kOProjInput}).view({4, 8});  // [heads, head_dim]
  CHECK(at::equal(s[0], s[1]));
  CHECK(at::equal(s[2], s[3]));
}

namespace {

// Every block tensor (by its Hugging Face name) whose value a recipe changed: which
// producers and consumers SmoothQuant folded into, seen from outside.
std::set<std::string> changed_weights(cc::CausalLM& model, const cc::QuantRecipe& recipe, const cc::CalibrationSet& calibration) {
  std::map<std::string, at::Tensor> before;
  for (const auto& [name, t] : model.named_weights()) before[name] = t->clone();
  cc::QuantizedModel q(model, recipe, &calibration);
  std::set<std::string> changed;
  for (const auto& [name, t] : model.named_weights())
    if (!at::equal(before.at(name), *t)) changed.insert(name);
  return changed;
}

cc::CalibrationSet random_calibration(std::int64_t vocab, std::uint64_t seed, std::int64_t sequences = 4, std::int64_t length = 16) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  cc::CalibrationSet calibration;
  for (std::int64_t i = 0; i < sequences; ++i) {
    at::Tensor t = at::randint(vocab, {length}, gen, at::kLong);
    calibration.sequences.emplace_back(t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + length);
  }
  return calibration;
}

}  // namespace

TEST_CASE("sq-o3 smooths exactly SmoothQuant's sites in every family, sq-o3-all also o_proj's and down_proj's inputs",
          "[quant][smoothquant]") {
  // The expectations are SmoothQuant's own list (smooth_lm in mit-han-lab/smoothquant,
  // smoothquant/smooth.py), by Hugging Face name within a block: the norm before q/k/v
  // and the norm before the MLP's first projection are divided, the projections they
  // feed multiplied. "all" adds o_proj's input (folded into v_proj's rows and bias) and
  // down_proj's (into up_proj's / fc1's rows) where the activation between allows it
  // (ReLU and SwiGLU's product do, GELU does not).
  struct Case {
    std::string family;
    cc::ModelConfig config;
    std::vector<std::string> reference, all_adds;
  };
  cc::ModelConfig mistral = cc::testing::tiny_llama_config(false), qwen2 = cc::testing::tiny_llama_config(false);
  mistral.model_type = "mistral";
  qwen2.model_type = "qwen2";
  qwen2.attention_bias = true;
  const std::vector<std::string> llama_reference = {"input_layernorm.weight",          "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                                    "self_attn.v_proj.weight",         "post_attention_layernorm.weight",
                                                    "mlp.gate_proj.weight",            "mlp.up_proj.weight"};
  const std::vector<std::string> opt_reference = {"self_attn_layer_norm.weight", "self_attn_layer_norm.bias", "self_attn.q_proj.weight",
                                                  "self_attn.k_proj.weight",     "self_attn.v_proj.weight",   "final_layer_norm.weight",
                                                  "final_layer_norm.bias",       "fc1.weight"};
  const std::vector<Case> cases = {
      {"llama", cc::testing::tiny_llama_config(false), llama_reference, {"self_attn.o_proj.weight", "mlp.down_proj.weight"}},
      {"mistral", mistral, llama_reference, {"self_attn.o_proj.weight", "mlp.down_proj.weight"}},
      {"qwen2", qwen2, llama_reference, {"self_attn.o_proj.weight", "self_attn.v_proj.bias", "mlp.down_proj.weight"}},
      {"opt", cc::testing::tiny_family_config("opt"), opt_reference,
       {"self_attn.out_proj.weight", "self_attn.v_proj.bias", "fc2.weight", "fc1.bias"}},
      // Post-norm OPT (opt-350m): its norms sit after the residual adds, so no norm feeds
      // q/k/v or fc1 alone and nothing can be folded. SmoothQuant's smooth_lm would divide
      // these gains anyway, changing the function; its OPT port notes it works only for
      // pre-norm OPT. So sq-o3 leaves opt-350m as it is.
      {"opt-350m", cc::testing::tiny_family_config("opt-350m"), {},
       {"self_attn.out_proj.weight", "self_attn.v_proj.weight", "self_attn.v_proj.bias", "fc2.weight", "fc1.weight", "fc1.bias"}},
      {"bloom", cc::testing::tiny_family_config("bloom"),
       {"input_layernorm.weight", "input_layernorm.bias", "self_attention.query_key_value.weight", "post_attention_layernorm.weight",
        "post_attention_layernorm.bias", "mlp.dense_h_to_4h.weight"},
       {"self_attention.dense.weight", "self_attention.query_key_value.bias"}},
      // GPT-2 is not in smooth_lm; its equivalents: c_attn after ln_1, c_fc after ln_2.
      {"gpt2", cc::testing::tiny_family_config("gpt2"),
       {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight"},
       {"attn.c_proj.weight", "attn.c_attn.bias"}},
  };
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.family) {
      const cc::HfWeights weights = cc::testing::random_weights(c.config, 11);
      const cc::CalibrationSet calibration = random_calibration(c.config.vocab_size, 12);
      const std::string layer_prefix = cc::model_family(c.config.model_type).layer_prefix;
      auto expected = [&](const std::vector<std::string>& a, const std::vector<std::string>& b) {
        std::set<std::string> names;
        for (int l = 0; l < c.config.num_layers; ++l)
          for (const auto* list : {&a, &b})
            for (const auto& suffix : *list) names.insert(layer_prefix + std::to_string(l) + "." + suffix);
        return names;
      };
      for (const char* preset : {"sq-o3", "sq-o3-all"}) {
        // Only the smoothing changes weights: quantization off.
        cc::QuantRecipe recipe = cc::load_recipe(preset);
        recipe.weights = cc::parse_quant_spec("off", cc::QuantRole::kWeight);
        recipe.activations = cc::parse_quant_spec("off", cc::QuantRole::kActivation);
        auto model = cc::build_model(weights);
        const std::set<std::string> changed = changed_weights(*model, recipe, calibration);
        INFO(preset);
        CHECK(changed == (std::string(preset) == "sq-o3" ? expected(c.reference, {}) : expected(c.reference, c.all_adds)));
      }
    }
  }
}

namespace {

// min and max per (layer, linear-input site) over the positions from `skip` on.
struct RangeRecorder : cc::ActivationHook {
  std::int64_t skip = 0;
  std::map<std::string, double> ranges;  // "layers.<l>.<site>.min" / ".max"
  at::Tensor on_activation(const cc::SiteContext& ctx, const at::Tensor& x) override {
    if (ctx.site != cc::Site::kAttnInput && ctx.site != cc::Site::kOProjInput && ctx.site != cc::Site::kMlpInput &&
        ctx.site != cc::Site::kDownProjInput)
      return x;
    const at::Tensor counted = x.narrow(1, skip, x.size(1) - skip);
    const std::string key = "layers." + std::to_string(ctx.layer) + "." + cc::site_name(ctx.site);
    const double lo = counted.min().item<double>(), hi = counted.max().item<double>();
    auto [lo_it, new_lo] = ranges.emplace(key + ".min", lo);
    if (!new_lo) lo_it->second = std::min(lo_it->second, lo);
    auto [hi_it, new_hi] = ranges.emplace(key + ".max", hi);
    if (!new_hi) hi_it->second = std::max(hi_it->second, hi);
    return x;
  }
};

std::map<std::string, double> recorded_ranges(cc::CausalLM& model, const cc::CalibrationSet& calibration, std::int64_t skip) {
  auto recorder = std::make_shared<RangeRecorder>();
  recorder->skip = skip;
  cc::HookHandle handle = model.add_hook(recorder);
  std::vector<at::Tensor> rows;
  for (const auto& s : calibration.sequences) rows.push_back(at::tensor(s, at::kLong));
  c10::NoGradGuard no_grad;
  (void)model.forward(at::stack(rows));
  return recorder->ranges;
}

double worst_relative_gap(const std::map<std::string, at::Tensor>& ranges, const std::map<std::string, double>& expected) {
  REQUIRE(ranges.size() == expected.size());
  double worst = 0;
  for (const auto& [key, value] : expected) {
    const double got = ranges.at(key).item<double>();
    worst = std::max(worst, std::abs(got - value) / std::max(std::abs(value), 1e-6));
  }
  return worst;
}

}  // namespace

TEST_CASE("static ranges are observed with float weights unless the recipe says quantized", "[quant]") {
  const cc::HfWeights weights = cc::testing::random_weights(cc::testing::tiny_llama_config(false), 31);
  const cc::CalibrationSet calibration = random_calibration(97, 32);
  cc::QuantRecipe recipe = cc::load_recipe("w8a8-per-tensor-static");
  REQUIRE(recipe.calibration.weights == cc::CalibrationWeights::kFloat);

  // The float model's own activations, recorded by a plain hook.
  auto float_model = cc::build_model(weights);
  const auto float_expected = recorded_ranges(*float_model, calibration, 0);
  // The same with every linear's weight replaced by the float64 reference quantization.
  auto reference_model = cc::build_model(weights);
  const cc::QuantSpec w8 = cc::parse_quant_spec("w8-per-channel-sym", cc::QuantRole::kWeight);
  for (const cc::LinearRef& ref : reference_model->linears())
    ref.linear->weight = reference(ref.linear->weight, w8).to(at::kFloat);
  const auto quantized_expected = recorded_ranges(*reference_model, calibration, 0);

  auto model = cc::build_model(weights);
  cc::QuantizedModel observed_float(*model, recipe, &calibration);
  const auto float_ranges = observed_float.ranges();
  CHECK(worst_relative_gap(float_ranges, float_expected) < 1e-6);

  recipe.calibration.weights = cc::CalibrationWeights::kQuantized;
  auto other = cc::build_model(weights);
  cc::QuantizedModel observed_quantized(*other, recipe, &calibration);
  const auto quantized_ranges = observed_quantized.ranges();
  CHECK(worst_relative_gap(quantized_ranges, quantized_expected) < 1e-5);
  // The orders really differ (by the weights' rounding), except before the first linear.
  CHECK(worst_relative_gap(quantized_ranges, float_expected) > 1e-4);
  CHECK(quantized_ranges.at("layers.0.attn_input.max").item<double>() == float_ranges.at("layers.0.attn_input.max").item<double>());
  // Either way the weights end up quantized.
  for (auto* m : {model.get(), other.get()}) {
    const at::Tensor w = m->linears().front().linear->weight;
    CHECK(max_abs_diff(w, reference(w, w8).to(at::kFloat)) < 1e-6);
  }
}

TEST_CASE("calibration.include_bos: the leading BOS runs but counts toward no range", "[quant]") {
  cc::HfWeights weights = cc::testing::random_weights(cc::testing::tiny_llama_config(false), 41);
  // BOS gets a massive activation of its own, as in LLaMA-class models: its embedding is
  // one channel, which the norm turns into sqrt(hidden) ~ 5.7 there, beyond any other
  // token's normed values (a standard normal's largest of ~2000 draws is ~3.5).
  at::Tensor& embed = weights.tensors.at("model.embed_tokens.weight");
  embed[1].zero_();
  embed[1][3] = 100.0;
  cc::CalibrationSet calibration = random_calibration(97, 42);
  for (auto& s : calibration.sequences) s[0] = 1;  // BOS first, as build_calibration_set puts it
  cc::QuantRecipe recipe = cc::load_recipe("w8a8-per-tensor-static");

  auto reference_model = cc::build_model(weights);
  const auto all_positions = recorded_ranges(*reference_model, calibration, 0);
  // The text after BOS, still read behind BOS: the forward pass is the same, position 0 is
  // just not counted.
  const auto after_bos = recorded_ranges(*reference_model, calibration, 1);

  auto counted = cc::build_model(weights);
  cc::QuantizedModel with_bos(*counted, recipe, &calibration);
  CHECK(worst_relative_gap(with_bos.ranges(), all_positions) < 1e-6);

  calibration.uncounted_leading = 1;  // what build_calibration_set sets for include_bos: false
  auto uncounted = cc::build_model(weights);
  cc::QuantizedModel without_bos(*uncounted, recipe, &calibration);
  CHECK(worst_relative_gap(without_bos.ranges(), after_bos) < 1e-6);
  CHECK(worst_relative_gap(without_bos.ranges(), all_positions) > 1e-3);  // BOS's activations did count before
}

namespace {
std::optional<cc::testing::StoriesFiles> stories_files() {
  return cc::testing::stories_files({"text/c4/c4_validation_2k.jsonl", "text/wikitext-2-raw/wiki.test.gptq.txt"});
}

double wikitext_ppl(cc::CausalLM& model, const std::vector<std::int64_t>& tokens) {
  cc::PerplexityOptions options;
  options.seq_len = 512;
  options.max_windows = 24;
  return cc::evaluate_perplexity(model, tokens, options).perplexity;
}
}  // namespace

TEST_CASE("W8A8 on stories260K: per-token dynamic stays within 1% of float", "[quant][slow]") {
  auto files = stories_files();
  if (!files) return;
  auto tokenizer = cc::load_tokenizer(files->tokenizer);
  const auto tokens = tokenizer->encode(cc::load_corpus("wikitext2").text, cc::BosPolicy::kAuto);
  auto float_model = cc::load_model(files->bin);
  const double float_ppl = wikitext_ppl(*float_model, tokens);

  auto model = cc::load_model(files->bin);
  cc::QuantizedModel quantized(*model, cc::load_recipe("w8a8-per-token-dynamic"), nullptr);
  CHECK(quantized.activation_quantizer_count() == 5 * 4);
  const double ppl = wikitext_ppl(*model, tokens);
  CHECK(std::abs(ppl - float_ppl) / float_ppl < 0.01);
  CHECK(ppl != float_ppl);  // it did quantize
}

TEST_CASE("text windows: one room rule behind a prefix, the same windows for every component", "[quant][windows]") {
  auto files = stories_files();
  if (!files) return;
  auto tokenizer = cc::load_tokenizer(files->tokenizer);
  // A context of 512 behind an 8-token prefix leaves 504: a longer window is capped to it.
  CHECK(cc::room_after_prefix(512, 8) == 504);
  const cc::TextWindows wide{"wikitext2", 3, 600, 5};
  const cc::SampledWindows capped = cc::sample_text_windows(*tokenizer, wide, cc::room_after_prefix(512, 8), cc::BosPolicy::kNo);
  REQUIRE(capped.sequences.size() == 3);
  for (const auto& w : capped.sequences) CHECK(w.size() == 504);
  CHECK(capped.leading == 0);
  CHECK(capped.description.find("3 x 504 tokens from wikitext2") == 0);
  // No room for even two tokens is a config error naming the prefix and the context.
  cc::testing::expect_error([] { cc::room_after_prefix(512, 511); }, cc::ErrorKind::kInvalidConfig,
                            {"prefix of 511 tokens", "context of 512"});
  // Calibration is these windows: the same tokens, BOS first when the policy puts one.
  cc::CalibrationOptions calibration;
  calibration.windows = {"wikitext2", 3, 128, 5};
  const cc::SampledWindows plain = cc::sample_text_windows(*tokenizer, calibration.windows, 512, cc::BosPolicy::kAuto);
  CHECK(plain.leading == 1);
  CHECK(cc::build_calibration_set(*tokenizer, calibration, 512, cc::BosPolicy::kAuto).sequences == plain.sequences);
  cc::testing::expect_error([&] { cc::sample_text_windows(*tokenizer, {"wikitext2", 0, 128, 5}, 512, cc::BosPolicy::kNo); },
                            cc::ErrorKind::kInvalidConfig, {"samples >= 1"});
}

TEST_CASE("static ranges calibrate on real data and restore exactly", "[quant]") {
  auto files = stories_files();
  if (!files) return;
  auto tokenizer = cc::load_tokenizer(files->tokenizer);
  cc::QuantRecipe recipe = cc::load_recipe("sq-o3");
  recipe.calibration.windows.samples = 8;
  recipe.calibration.windows.seq_len = 128;
  const cc::CalibrationSet calibration = cc::build_calibration_set(*tokenizer, recipe.calibration, 512, cc::BosPolicy::kAuto);
  REQUIRE(calibration.sequences.size() == 8);
  CHECK(calibration.sequences[0].size() == 128);
  CHECK(calibration.sequences[0][0] == 1);  // BOS first
  // Same seed, same windows.
  CHECK(cc::build_calibration_set(*tokenizer, recipe.calibration, 512, cc::BosPolicy::kAuto).sequences == calibration.sequences);
  CHECK(calibration.uncounted_leading == 0);
  // include_bos: false keeps the windows, BOS included, and marks it uncounted.
  cc::CalibrationOptions no_bos = recipe.calibration;
  no_bos.include_bos = false;
  const cc::CalibrationSet uncounted = cc::build_calibration_set(*tokenizer, no_bos, 512, cc::BosPolicy::kAuto);
  CHECK(uncounted.sequences == calibration.sequences);
  CHECK(uncounted.uncounted_leading == 1);
  CHECK(uncounted.description.find("BOS first, not counted") != std::string::npos);
  // Behind a prefix the windows hold no BOS: nothing to leave out.
  CHECK(cc::build_calibration_set(*tokenizer, no_bos, 512, cc::BosPolicy::kNo).uncounted_leading == 0);

  const at::Tensor ids = at::tensor(tokenizer->encode("Once upon a time there was a cat.", cc::BosPolicy::kYes), at::kLong).unsqueeze(0);
  std::map<std::string, at::Tensor> ranges;
  at::Tensor first;
  {
    auto model = cc::load_model(files->bin);
    cc::QuantizedModel q(*model, recipe, &calibration);
    const cc::Quantizer* down = q.activation_quantizer(4, cc::Site::kDownProjInput);
    REQUIRE(down != nullptr);
    CHECK(down->state().at("max").item<double>() > 0);
    ranges = q.ranges();
    CHECK(ranges.size() == 5 * 4 * 2);
    CHECK(ranges.count("layers.4.down_proj_input.max") == 1);
    first = model->forward(ids).logits;
  }
  // A fresh model with the saved ranges instead of a static calibration.
  auto model = cc::load_model(files->bin);
  cc::QuantizedModel q(*model, recipe, &calibration, nullptr, &ranges);
  CHECK(max_abs_diff(model->forward(ids).logits, first) < 1e-5);
  ranges.erase("layers.2.attn_input.min");
  auto other = cc::load_model(files->bin);
  cc::testing::expect_error([&] { cc::QuantizedModel bad(*other, recipe, &calibration, nullptr, &ranges); }, cc::ErrorKind::kMismatch,
                            {"layers.2.attn_input", "min"});
}

TEST_CASE("a registered quantizer is selected by recipe", "[quant]") {
  struct Halving : cc::UniformQuantizer {
    using UniformQuantizer::UniformQuantizer;
    cc::QuantParams make_params(const at::Tensor& lo, const at::Tensor& hi) const override {
      cc::QuantParams p = UniformQuantizer::make_params(lo, hi);
      p.scale = p.scale * 2;  // deliberately coarse, so the effect is visible
      return p;
    }
  };
  cc::register_quantizer("halving", [](const cc::QuantSpec& spec, const std::string& name) {
    return std::make_unique<Halving>(spec, name);
  });
  auto kinds = cc::quantizer_kinds();
  CHECK(std::find(kinds.begin(), kinds.end(), "halving") != kinds.end());
  auto model = cc::build_model(cc::testing::random_weights(cc::testing::tiny_llama_config(false), 5));
  cc::QuantRecipe recipe = cc::load_recipe("w8a8-per-token-dynamic");
  recipe.quantizer = "halving";
  cc::QuantizedModel q(*model, recipe, nullptr);
  at::Tensor x = at::tensor({0.0, 1.0, 3.0}, at::kFloat).view({1, 1, 3});
  // Asymmetric 8-bit over [0, 3] has scale 3/255; doubled, 1.0 lands on a multiple of 6/255.
  at::Tensor y = q.activation_quantizer(0, cc::Site::kAttnInput)->quantize(x, at::Tensor());
  CHECK(y.view({-1})[1].item<double>() == Approx(std::nearbyint(1.0 / (6.0 / 255)) * 6.0 / 255));
}

TEST_CASE("INT8 execution computes what fake quantization computes", "[quant][int8]") {
  if (!cc::kernels::cpu_int8_gemm_available()) {
    cc::testing::skip_test("this build has no oneDNN (install libdnnl-dev and reconfigure)");
    return;
  }
  auto files = stories_files();
  if (!files) return;
  auto tokenizer = cc::load_tokenizer(files->tokenizer);
  const auto tokens = tokenizer->encode(cc::load_corpus("wikitext2").text, cc::BosPolicy::kAuto);
  c10::NoGradGuard no_grad;
  for (const char* preset : {"w8a8-per-tensor-static", "sq-o3", "w8a8-per-tensor-dynamic", "w8a8-per-token-dynamic"}) {
    INFO(preset);
    cc::QuantRecipe recipe = cc::load_recipe(preset);
    recipe.calibration.windows.samples = 8;
    recipe.calibration.windows.seq_len = 256;
    const cc::CalibrationSet calibration = cc::build_calibration_set(*tokenizer, recipe.calibration, 512, cc::BosPolicy::kAuto);
    auto fake_model = cc::load_model(files->bin);
    cc::QuantizedModel fake(*fake_model, recipe, &calibration);
    auto int8_model = cc::load_model(files->bin);
    cc::QuantizedModel real(*int8_model, recipe, &calibration);
    const std::int64_t float_bytes = cc::describe_model(*int8_model, "").at("weight_bytes").get<std::int64_t>();
    REQUIRE(real.execute_int8() == 5 * 7);

    // Each layer alone: the kernel equals fake-quantized input times fake-quantized
    // weight up to float rounding (exact integer sums against float ones). The float
    // weights are gone: each linear holds its int8 weight, a quarter of the bytes.
    at::manual_seed(3);
    const auto fake_linears = fake_model->linears();
    const auto int8_linears = int8_model->linears();
    std::int64_t linear_float_bytes = 0;
    for (std::size_t i = 0; i < int8_linears.size(); ++i) {
      const cc::LinearRef& ref = int8_linears[i];
      const at::Tensor& fake_weight = fake_linears[i].linear->weight;
      INFO(ref.name);
      CHECK(ref.linear->weight.scalar_type() == at::kChar);
      CHECK(ref.linear->weight.sizes() == fake_weight.sizes());
      linear_float_bytes += fake_weight.numel() * 4;
      const at::Tensor x = at::randn({2, 33, fake_weight.size(1)}) * 3.0;
      cc::QuantParams p;
      if (recipe.activations.mode == cc::RangeMode::kStatic) {
        const auto state = real.activation_quantizer(ref.layer, ref.input_site)->state();
        p = cc::params_for_range(state.at("min"), state.at("max"), recipe.activations);
      } else if (recipe.activations.granularity == cc::Granularity::kPerToken) {  // one range per token: a vector of scales
        p = cc::params_for_range(x.amin(-1, true), x.amax(-1, true), recipe.activations);
      } else {  // one range per sequence
        p = cc::params_for_range(x.amin({1, 2}, true), x.amax({1, 2}, true), recipe.activations);
      }
      const at::Tensor expected = at::linear(cc::fake_quantize(x, p), fake_weight, fake_linears[i].linear->bias);
      const at::Tensor got = ref.linear->kernel->forward(x);
      CHECK((got - expected).abs().max().item<double>() <= 1e-5 * expected.abs().max().item<double>() + 1e-6);
    }

    // The whole model: the same up to those roundings, which now and then move a value
    // across a rounding boundary of a later quantizer (one step of one element).
    const double ppl_fake = wikitext_ppl(*fake_model, tokens), ppl_int8 = wikitext_ppl(*int8_model, tokens);
    CHECK(std::abs(ppl_int8 - ppl_fake) / ppl_fake < 2e-3);
    const std::int64_t int8_bytes = cc::describe_model(*int8_model, "").at("weight_bytes").get<std::int64_t>();
    CHECK(float_bytes - int8_bytes == linear_float_bytes * 3 / 4);
    cc::testing::TempDir dir;
    cc::testing::expect_error([&] { cc::save_hf_model(*int8_model, dir / "saved"); }, cc::ErrorKind::kUnsupported,
                              {"INT8", "save the float model"});
  }

  // What the kernels cannot run is refused by name.
  const cc::QuantSpec w8 = cc::parse_quant_spec("w8-per-channel-sym", cc::QuantRole::kWeight);
  CHECK_THAT(cc::int8_execution_blocker(w8, cc::parse_quant_spec("a4-per-tensor-dynamic-sym", cc::QuantRole::kActivation), "uniform"),
             Catch::Contains("not 8-bit per-tensor"));
  CHECK_THAT(cc::int8_execution_blocker(w8, cc::parse_quant_spec("a8-per-token-dynamic-sym", cc::QuantRole::kActivation), "mine"),
             Catch::Contains("not the built-in uniform one"));
}

TEST_CASE("INT8 dynamic ranges per sequence and per token: one GEMM with vector scales equals fake quantization", "[quant][int8]") {
  if (!cc::kernels::cpu_int8_gemm_available()) {
    cc::testing::skip_test("this build has no oneDNN (install libdnnl-dev and reconfigure)");
    return;
  }
  at::manual_seed(11);
  const cc::QuantSpec weight_spec = cc::parse_quant_spec("w8-per-channel-sym", cc::QuantRole::kWeight);
  at::Tensor w = at::randn({40, 96}) * 0.05;
  w = cc::fake_quantize(w, cc::params_for_range(w.amin(1, true), w.amax(1, true), weight_spec));
  const at::Tensor bias = at::randn({40});
  // Rows of very different ranges, so a wrong row-to-scale mapping shows.
  at::Tensor x = at::randn({3, 17, 96}) * at::linspace(0.1, 20.0, 3 * 17).reshape({3, 17, 1});
  x[1][4][7] = 300.0;  // one outlier token
  for (const char* input_name : {"a8-per-token-dynamic-sym", "a8-per-token-dynamic-asym", "a8-per-tensor-dynamic-sym",
                                 "a8-per-tensor-dynamic-asym"}) {
    INFO(input_name);
    const cc::QuantSpec input_spec = cc::parse_quant_spec(input_name, cc::QuantRole::kActivation);
    const bool per_token = input_spec.granularity == cc::Granularity::kPerToken;
    const cc::QuantParams p = per_token ? cc::params_for_range(x.amin(-1, true), x.amax(-1, true), input_spec)
                                        : cc::params_for_range(x.amin({1, 2}, true), x.amax({1, 2}, true), input_spec);
    // float64 reference of the fake-quantized layer.
    const at::Tensor expected = at::linear(cc::fake_quantize(x, p).to(at::kDouble), w.to(at::kDouble), bias.to(at::kDouble));
    const cc::Int8LinearKernel kernel(w, bias, weight_spec, input_spec, std::nullopt);
    const at::Tensor got = kernel.forward(x);
    REQUIRE(got.sizes() == expected.sizes());
    // Row by row, relative to the row's own size: a small row quantized with a big row's
    // scale would be off by far more.
    const at::Tensor row_error = (got.to(at::kDouble) - expected).abs().amax(-1);
    const at::Tensor row_size = expected.abs().amax(-1);
    CHECK((row_error <= row_size * 1e-5 + 1e-6).all().item<bool>());
    // 2-D input: per token still per row; per tensor one range for all rows.
    const at::Tensor x2 = x[2];
    const cc::QuantParams p2 = per_token ? cc::params_for_range(x2.amin(-1, true), x2.amax(-1, true), input_spec)
                                         : cc::params_for_range(x2.min().reshape({1, 1}), x2.max().reshape({1, 1}), input_spec);
    const at::Tensor expected2 = at::linear(cc::fake_quantize(x2, p2).to(at::kDouble), w.to(at::kDouble), bias.to(at::kDouble));
    CHECK(cc::testing::max_abs_diff(kernel.forward(x2).to(at::kDouble), expected2) <= 1e-5 * expected2.abs().max().item<double>() + 1e-6);
  }
}

TEST_CASE("INT8 execution takes a bfloat16 model's fake-quantized weights", "[quant][int8]") {
  // On a GPU models run in bfloat16, so the fake-quantized weight is int8 x scale rounded
  // to bfloat16 (8 significant bits): the layer quantizes it anew, and computes what the
  // float32 fake-quantized layer computes up to that rounding.
  if (!cc::kernels::cpu_int8_gemm_available()) {
    cc::testing::skip_test("this build has no oneDNN (install libdnnl-dev and reconfigure)");
    return;
  }
  at::manual_seed(5);
  const cc::QuantSpec weight_spec = cc::parse_quant_spec("w8-per-channel-sym", cc::QuantRole::kWeight);
  const cc::QuantSpec input_spec = cc::parse_quant_spec("a8-per-tensor-dynamic-sym", cc::QuantRole::kActivation);
  const at::Tensor w = at::randn({48, 64}) * 0.05;
  const at::Tensor w_fq = cc::fake_quantize(w, cc::params_for_range(w.amin(1, true), w.amax(1, true), weight_spec));
  const at::Tensor w_bf16 = w_fq.to(at::kBFloat16);
  REQUIRE_FALSE(at::equal(w_bf16.to(at::kFloat), w_fq));  // the rounding this case is about
  const cc::Int8LinearKernel from_float(w_fq, at::Tensor(), weight_spec, input_spec, std::nullopt);
  const cc::Int8LinearKernel from_bf16(w_bf16, at::Tensor(), weight_spec, input_spec, std::nullopt);
  // At most one int8 step apart, and rarely that.
  const at::Tensor steps = (from_bf16.int8_weight().to(at::kInt) - from_float.int8_weight().to(at::kInt)).abs();
  CHECK(steps.max().item<int>() <= 1);
  CHECK(steps.sum().item<int>() <= steps.numel() / 20);
  const at::Tensor x = at::randn({2, 9, 64});
  const at::Tensor expected = from_float.forward(x);
  CHECK(cc::testing::max_abs_diff(from_bf16.forward(x), expected) <= 2e-2 * expected.abs().max().item<double>());
  // A float32 weight that is not int8 x scale is still refused, by name.
  cc::testing::expect_error([&] { cc::Int8LinearKernel(w, at::Tensor(), weight_spec, input_spec, std::nullopt); },
                            cc::ErrorKind::kInvalidArgument, {"not fake-quantized"});
}
