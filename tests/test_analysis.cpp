// Activation statistics and the per-tensor static collapse they explain, on stories260K
// with a planted outlier: a test fixture that sets one hidden channel of the
// down-projection input at the first position to 1000 in every layer from layer 1 on, about
// 10^4 times the median |x| there, the ratio LLaMA-2-7B shows. That is where LLaMA-class
// models carry their massive activations (Sun et al. 2024: on the first token, at the
// input of the down projection, from an early layer on; the residual stream then holds
// them). stories260K has none of its own: its largest residual value is about 14.
// (Multiplying the existing value, about 0.1, by 1000 instead gives a ratio near 400: per-
// tensor static W8A8 then costs 24% perplexity on this 5-layer model, not a collapse.)
#include <ATen/ATen.h>
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cushioncache/analysis/activation_stats.h"
#include "cushioncache/analysis/inspect.h"
#include "cushioncache/analysis/svg_chart.h"
#include "cushioncache/core/files.h"
#include "cushioncache/eval/loglikelihood.h"
#include "cushioncache/eval/perplexity.h"
#include "cushioncache/io/corpus.h"
#include "cushioncache/model/identity.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/quant/quantize_model.h"
#include "cushioncache/quant/smoothquant.h"
#include "support/test_support.h"

namespace cc = cushioncache;

namespace {

constexpr int kPlantLayer = 1;
constexpr std::int64_t kPlantChannel = 17;
constexpr double kPlantValue = 1000.0;

// The fixture: channel 17 of the down_proj input, at input position 0, set to 1000, in
// layers 1 and up.
struct PlantedOutlier : cc::ActivationHook {
  at::Tensor on_activation(const cc::SiteContext& ctx, const at::Tensor& x) override {
    if (ctx.layer < kPlantLayer || ctx.site != cc::Site::kDownProjInput) return x;
    at::Tensor out = x.clone();
    out.select(1, 0).select(1, kPlantChannel).fill_(kPlantValue);
    return out;
  }
};

struct Fixture {
  std::filesystem::path bin;
  std::unique_ptr<cc::Tokenizer> tokenizer;
};
std::optional<Fixture> fixture() {
  auto files = cc::testing::stories_files({"text/wikitext-2-raw/wiki.test.gptq.txt", "text/c4/c4_validation_2k.jsonl"});
  if (!files) return std::nullopt;
  return Fixture{files->bin, cc::load_tokenizer(files->tokenizer)};
}

}  // namespace

TEST_CASE("statistics point at a planted outlier's layer, position and channel", "[analysis]") {
  auto f = fixture();
  if (!f) return;
  auto model = cc::load_model(f->bin);
  cc::HookHandle plant = model->add_hook(std::make_shared<PlantedOutlier>());
  const cc::TextWindows sampling{"wikitext2", 3, 128, 0};
  const auto samples = cc::sample_text_windows(*f->tokenizer, sampling, 512, cc::BosPolicy::kAuto).sequences;
  const cc::ActivationReport report = cc::collect_activation_stats(*model, samples, nullptr);
  bool found = false;
  for (const auto& s : report.sites) {
    if (s.layer >= kPlantLayer && s.site == cc::Site::kDownProjInput) {
      found = true;
      CHECK(s.top1_position == 0);
      CHECK(s.top1_channel == kPlantChannel);
      CHECK(s.top1 > 100 * s.top10pct);
    }
    // The residual stream carries the outlier into every later block, at position 0.
    if (s.site == cc::Site::kBlockInput && s.layer > kPlantLayer) {
      CHECK(s.top1_position == 0);
      CHECK(s.top1 > 20 * s.top10pct);
    }
  }
  CHECK(found);
  CHECK(cc::last_block_input(report).layer == 4);
  CHECK(report.attention.size() == 5);
  CHECK(report.attention[0].mass_on_first.size() == 4);
  for (double m : report.attention[2].mass_on_first) CHECK((m >= 0 && m <= 1));
  // Per head: the mean over heads of each head's mass on key 0 is the mean over heads and
  // queries taken the other way round.
  for (const auto& a : report.attention) {
    REQUIRE(a.head_mass_on_key0.size() == static_cast<std::size_t>(model->config().num_heads));
    double sum = 0;
    for (double m : a.head_mass_on_key0) {
      CHECK((m >= 0 && m <= 1));
      sum += m;
    }
    CHECK(sum / static_cast<double>(a.head_mass_on_key0.size()) == Approx(a.mass_on_first[0]).epsilon(1e-9));
  }
  REQUIRE(report.token_max.size() == 5);
  // Token-wise maxima: position 0 stands out after the plant.
  const auto& tokens = report.token_max[3];
  CHECK(std::max_element(tokens.begin(), tokens.end()) == tokens.begin());
}

TEST_CASE("per-tensor static W8A8 collapses on a planted outlier, per-token dynamic does not", "[analysis][quant]") {
  auto f = fixture();
  if (!f) return;
  const auto tokens = f->tokenizer->encode(cc::load_corpus("wikitext2").text, cc::BosPolicy::kAuto);
  auto ppl = [&](cc::CausalLM& model) {
    cc::PerplexityOptions options;
    options.seq_len = 256;
    options.max_windows = 12;
    return cc::evaluate_perplexity(model, tokens, options).perplexity;
  };
  auto planted_model = [&](std::optional<cc::HookHandle>& handle) {
    auto model = cc::load_model(f->bin);
    handle.emplace(model->add_hook(std::make_shared<PlantedOutlier>()));  // before any quantizer: it acts first
    return model;
  };
  std::optional<cc::HookHandle> h1, h2, h3;
  auto float_model = planted_model(h1);
  const double float_ppl = ppl(*float_model);

  cc::QuantRecipe recipe = cc::load_recipe("w8a8-per-tensor-static");
  recipe.calibration.windows.samples = 8;
  recipe.calibration.windows.seq_len = 256;
  const cc::CalibrationSet calibration = cc::build_calibration_set(*f->tokenizer, recipe.calibration, 512, cc::BosPolicy::kAuto);
  auto static_model = planted_model(h2);
  cc::QuantizedModel per_tensor(*static_model, recipe, &calibration);
  const double static_ppl = ppl(*static_model);

  auto dynamic_model = planted_model(h3);
  cc::QuantizedModel per_token(*dynamic_model, cc::load_recipe("w8a8-per-token-dynamic"), nullptr);
  const double dynamic_ppl = ppl(*dynamic_model);

  INFO("float " << float_ppl << ", per-tensor static " << static_ppl << ", per-token dynamic " << dynamic_ppl);
  CHECK(static_ppl > 2 * float_ppl);
  CHECK(std::abs(dynamic_ppl - float_ppl) / float_ppl < 0.05);
}

TEST_CASE("a SmoothQuant-folded model keeps the prefix invariant with the adapted prefix", "[analysis][smoothquant]") {
  auto f = fixture();
  if (!f) return;
  auto model = cc::load_model(f->bin);
  const auto prefix_tokens = f->tokenizer->encode("Once upon a time", cc::BosPolicy::kYes);
  const cc::KVCache float_prefix = cc::compute_kv_cache(*model, prefix_tokens);
  cc::QuantRecipe smooth_only;  // SmoothQuant alone: the function must not change
  smooth_only.name = "smooth-only";
  smooth_only.weights = cc::parse_quant_spec("off", cc::QuantRole::kWeight);
  smooth_only.activations = cc::parse_quant_spec("off", cc::QuantRole::kActivation);
  smooth_only.smoothquant = cc::SmoothQuantOptions{};
  // All four sites: only o_proj's scale, folded into v_proj's rows, changes the cached
  // values this test is about (SmoothQuant's own sites, the default, leave them as they are).
  smooth_only.smoothquant->sites = cc::smoothquant_all_sites();
  smooth_only.calibration.windows.samples = 4;
  smooth_only.calibration.windows.seq_len = 64;
  const auto calibration = cc::build_calibration_set(*f->tokenizer, smooth_only.calibration, 512, cc::BosPolicy::kNo);
  cc::QuantizedModel smoothed(*model, smooth_only, &calibration, &float_prefix);
  REQUIRE(smoothed.prefix() != nullptr);

  const auto text = f->tokenizer->encode(" there was a big dog.", cc::BosPolicy::kNo);
  std::vector<std::int64_t> full = prefix_tokens;
  full.insert(full.end(), text.begin(), text.end());
  at::Tensor whole = model->forward(at::tensor(full, at::kLong).unsqueeze(0)).logits.narrow(1, static_cast<std::int64_t>(prefix_tokens.size()),
                                                                                            static_cast<std::int64_t>(text.size()));
  cc::ForwardOptions adapted;
  adapted.past = smoothed.prefix();
  CHECK(cc::testing::max_abs_diff(model->forward(at::tensor(text, at::kLong).unsqueeze(0), adapted).logits, whole) < 1e-4);
  // The float prefix's values no longer fit the smoothed v_proj: the model refuses it.
  cc::ForwardOptions stale;
  stale.past = &float_prefix;
  cc::testing::expect_error([&] { model->forward(at::tensor(text, at::kLong).unsqueeze(0), stale); }, cc::ErrorKind::kMismatch,
                            {"folded into v_proj", "QuantizedModel::prefix"});
  // Its values in the old basis would give other logits: what the refusal prevents.
  cc::KVCache relabelled = float_prefix;
  relabelled.value_basis = model->value_basis();
  stale.past = &relabelled;
  CHECK(cc::testing::max_abs_diff(model->forward(at::tensor(text, at::kLong).unsqueeze(0), stale).logits, whole) > 1e-3);
  // A cache the smoothed model computes itself is in its basis.
  CHECK(cc::compute_kv_cache(*model, prefix_tokens).value_basis == model->value_basis());
  // Zero-shot scoring caches each item's context through the staged forward and reuses it
  // for the continuations: on the smoothed model, behind the adapted prefix, that gives
  // what running every request whole gives.
  const std::vector<cc::TokenizedRequest> requests = {
      cc::encode_pair(*f->tokenizer, "Once upon a time there was", " a dog", cc::BosPolicy::kNo),
      cc::encode_pair(*f->tokenizer, "Once upon a time there was", " a big cat", cc::BosPolicy::kNo)};
  cc::ScoringOptions scoring;
  scoring.prefix = smoothed.prefix();
  const auto shared = cc::score_continuations(*model, requests, scoring);
  scoring.share_contexts = false;
  const auto whole_requests = cc::score_continuations(*model, requests, scoring);
  for (std::size_t i = 0; i < requests.size(); ++i) CHECK(shared[i].logprob == Approx(whole_requests[i].logprob).margin(1e-4));
  // Recipes that do not fold into v_proj (SmoothQuant's own sites) leave the float prefix valid.
  auto plain = cc::load_model(f->bin);
  const cc::KVCache plain_prefix = cc::compute_kv_cache(*plain, prefix_tokens);
  smooth_only.smoothquant->sites = cc::smoothquant_norm_sites();
  cc::QuantizedModel norm_only(*plain, smooth_only, &calibration, &plain_prefix);
  stale.past = &plain_prefix;
  CHECK_NOTHROW(plain->forward(at::tensor(text, at::kLong).unsqueeze(0), stale));
}

TEST_CASE("inspect writes stats, tables and plots", "[analysis]") {
  auto f = fixture();
  if (!f) return;
  auto model = cc::load_model(f->bin);
  cc::InspectOptions options;
  options.windows.samples = 2;
  options.windows.seq_len = 64;
  const cc::KVCache prefix = cc::compute_kv_cache(*model, f->tokenizer->encode("", cc::BosPolicy::kYes));
  const cc::Inspection inspection = cc::inspect_model(*model, *f->tokenizer, options, &prefix);
  REQUIRE(inspection.with_prefix.has_value());
  CHECK(inspection.with_prefix->prefix_length == 1);
  cc::testing::TempDir dir;
  cc::write_inspection(inspection, cc::describe_model(*model, f->bin.string()), dir.path());
  for (const char* file : {"stats.json", "sites.csv", "attention.csv", "token_max.csv", "magnitudes.svg", "token_max.svg", "attention_sinks.svg"})
    CHECK(std::filesystem::file_size(dir / file) > 100);
  const auto stats = nlohmann::json::parse(cc::read_file(dir / "stats.json"));
  CHECK(stats["without_prefix"]["sites"].size() == 5 * 5);
  CHECK(stats["with_prefix"]["prefix_length"] == 1);
  const std::string svg = cc::read_file(dir / "magnitudes.svg");
  CHECK(svg.find("<polyline") != std::string::npos);
  CHECK(svg.find("top-1 |x|, no prefix") != std::string::npos);
}

TEST_CASE("SVG charts place points on the axes they label", "[analysis]") {
  cc::ChartOptions options;
  options.title = "t <&>";
  options.log_y = true;
  const std::string svg = cc::line_chart_svg({{"a", {0, 1, 2}, {1, 10, 100}, false}, {"b", {0, 1}, {0.0, -1.0}, true}}, options);
  CHECK(svg.find("t &lt;&amp;&gt;") != std::string::npos);  // escaped
  CHECK(svg.find(">100<") != std::string::npos);            // a decade tick label
  CHECK(svg.find("stroke-dasharray") != std::string::npos);
}
