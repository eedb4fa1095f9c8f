// A minimal program built against the installed CushionCache package: loads a model and
// its tokenizer, watches the residual stream through an activation hook, and checks that
// a cached prefix leaves the text logits unchanged; then says which devices have INT8
// kernels (CUDA when the program links cushioncache::cuda, the package's CUDA component).
//   consumer <model: HF folder or llama2.c .bin> <tokenizer>
#include <cstdio>
#include <vector>

#include <ATen/ATen.h>

#include "cushioncache/core/error.h"
#include "cushioncache/kernels/int8_ops.h"
#include "cushioncache/model/causal_lm.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cc = cushioncache;

// Largest |x| of the residual stream entering each block, text tokens only.
struct MaxActivation : cc::ActivationHook {
  std::vector<double> per_layer;
  at::Tensor on_activation(const cc::SiteContext& ctx, const at::Tensor& x) override {
    if (ctx.site != cc::Site::kBlockInput) return x;
    if (per_layer.size() <= static_cast<std::size_t>(ctx.layer)) per_layer.resize(ctx.layer + 1, 0.0);
    at::Tensor text = x.abs().amax(-1).masked_select(ctx.text_mask);
    if (text.numel() > 0) per_layer[ctx.layer] = std::max(per_layer[ctx.layer], text.max().item<double>());
    return x;
  }
};

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <model> <tokenizer>\n", argv[0]);
    return 2;
  }
  try {
    auto model = cc::load_model(argv[1]);
    auto tokenizer = cc::load_tokenizer(argv[2]);
    const auto prefix = tokenizer->encode("Once upon a time", cc::BosPolicy::kYes);
    const auto text = tokenizer->encode(" there was a little dog.", cc::BosPolicy::kNo);

    std::vector<std::int64_t> full = prefix;
    full.insert(full.end(), text.begin(), text.end());
    auto hook = std::make_shared<MaxActivation>();
    cc::ForwardOptions observe;
    observe.prefix_tokens = static_cast<std::int64_t>(prefix.size());
    at::Tensor full_logits;
    {
      cc::HookHandle handle = model->add_hook(hook);
      full_logits = model->forward(at::tensor(full, at::kLong).unsqueeze(0), observe).logits;
    }
    for (std::size_t l = 0; l < hook->per_layer.size(); ++l) std::printf("layer %zu max |block input| %.3f\n", l, hook->per_layer[l]);

    // README's lines: the prefix's cache, then the text behind it.
    cc::KVCache prefix_kv = cc::compute_kv_cache(*model, tokenizer->encode("Once upon a time", cc::BosPolicy::kYes));
    cc::ForwardOptions cached;
    cached.past = &prefix_kv;
    at::Tensor text_logits = model->forward(cc::encode_to_tensor(*tokenizer, " there was a little dog.", cc::BosPolicy::kNo), cached).logits;
    const double diff =
        (text_logits - full_logits.narrow(1, static_cast<std::int64_t>(prefix.size()), static_cast<std::int64_t>(text.size())))
            .abs().max().item<double>();
    std::printf("prefix-cached logits match the full sequence: max |diff| = %.2e\n", diff);
    std::printf("INT8 kernels: cpu %s, cuda %s\n", cc::kernels::has_int8_linear_backend(c10::DeviceType::CPU) ? "yes" : "no",
                cc::kernels::has_int8_linear_backend(c10::DeviceType::CUDA) ? "yes" : "no");
    return diff < 1e-4 ? 0 : 1;
  } catch (const cc::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return cc::exit_code(e.kind());
  }
}
