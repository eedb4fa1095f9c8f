// Adding a quantizer without touching the library: power-of-two scales (shift-friendly
// hardware), registered under the name "pow2" and selected from a YAML recipe
// (configs/w8a8-pow2.yaml has `quantizer: pow2`). The program quantizes a model with
// that recipe, checks that every scale it used is a power of two, and compares WikiText-2
// perplexity with the float model and with the built-in uniform quantizer.
//
//   custom_quantizer <model> <tokenizer> <recipe.yaml>
#include <cmath>
#include <cstdio>
#include <memory>

#include <ATen/ATen.h>

#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"
#include "cushioncache/eval/perplexity.h"
#include "cushioncache/io/corpus.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/quant/quantize_model.h"
#include "cushioncache/quant/quantizer.h"
#include "cushioncache/quant/recipe.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cc = cushioncache;

// The uniform quantizer with each scale rounded up to the next power of two (so the
// range still fits); the zero-point follows the new scale.
class PowerOfTwoQuantizer : public cc::UniformQuantizer {
 public:
  using UniformQuantizer::UniformQuantizer;
  static int scales_checked;
  static int scales_not_power_of_two;

 protected:
  cc::QuantParams make_params(const at::Tensor& min, const at::Tensor& max) const override {
    cc::QuantParams p = UniformQuantizer::make_params(min, max);
    p.scale = at::pow(2.0, at::ceil(at::log2(p.scale)));
    if (!spec().symmetric)
      p.zero_point = at::round(-min.to(at::kFloat).clamp_max(0.0) / p.scale).clamp(static_cast<double>(p.qmin), static_cast<double>(p.qmax));
    // The check the example promises: every scale is exactly 2^k.
    at::Tensor exponent = at::log2(p.scale);
    scales_checked += 1;
    scales_not_power_of_two += !at::equal(exponent, at::round(exponent));
    return p;
  }
};
int PowerOfTwoQuantizer::scales_checked = 0;
int PowerOfTwoQuantizer::scales_not_power_of_two = 0;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <model> <tokenizer> <recipe.yaml>\n", argv[0]);
    return 2;
  }
  try {
    cc::log::set_level(cc::log::Level::kWarn);  // no progress lines between the results
    cc::register_quantizer("pow2", [](const cc::QuantSpec& spec, const std::string& name) {
      return std::make_unique<PowerOfTwoQuantizer>(spec, name);
    });
    const cc::QuantRecipe recipe = cc::load_recipe(argv[3]);
    auto tokenizer = cc::load_tokenizer(argv[2]);
    const auto tokens = tokenizer->encode(cc::load_corpus("wikitext2").text, cc::BosPolicy::kAuto);
    cc::PerplexityOptions options;
    options.seq_len = 256;
    options.max_windows = 16;

    auto ppl_with = [&](const cc::QuantRecipe* r) {
      auto model = cc::load_model(argv[1]);
      std::unique_ptr<cc::QuantizedModel> quantized;
      if (r != nullptr) quantized = std::make_unique<cc::QuantizedModel>(*model, *r, nullptr);
      return cc::evaluate_perplexity(*model, tokens, options).perplexity;
    };
    cc::QuantRecipe uniform = recipe;
    uniform.quantizer = "uniform";
    std::printf("recipe %s: weights %s, activations %s, quantizer %s\n", recipe.name.c_str(), recipe.weights.to_string().c_str(),
                recipe.activations.to_string().c_str(), recipe.quantizer.c_str());
    std::printf("WikiText-2 perplexity (16 x 256 tokens): float %.3f, uniform %.3f, %s %.3f\n", ppl_with(nullptr), ppl_with(&uniform),
                recipe.quantizer.c_str(), ppl_with(&recipe));
    std::printf("%d scales computed by %s, %d not a power of two\n", PowerOfTwoQuantizer::scales_checked, recipe.quantizer.c_str(),
                PowerOfTwoQuantizer::scales_not_power_of_two);
    return PowerOfTwoQuantizer::scales_checked > 0 && PowerOfTwoQuantizer::scales_not_power_of_two == 0 ? 0 : 1;
  } catch (const cc::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return cc::exit_code(e.kind());
  }
}
