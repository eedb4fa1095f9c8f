// What does fake quantization cost? One LLaMA-7B-shaped block (T = 512, float32), first
// unquantized, then with each W8A8 preset's activation quantizers attached (weights are
// quantized once, outside the timing), in one run. Target: at most 1.3x.
//
//   bench_fake_quant [--seq-len 512] [--reps 5] [--threads N] [--device cpu]
#include <cstdio>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <c10/core/GradMode.h>

#include "bench_common.h"
#include "cushioncache/core/allocator.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"
#include "cushioncache/core/tensor_options.h"
#include "cushioncache/quant/quantize_model.h"

namespace cc = cushioncache;

int main(int argc, char** argv) {
  cc::reuse_freed_host_memory();  // as the CLI does: measure what users run
  CLI::App app{"Fake-quantization overhead on a LLaMA-7B-shaped block"};
  cc::bench::BlockFlags flags;
  flags.add_to(app);
  CLI11_PARSE(app, argc, argv);
  const std::int64_t seq_len = flags.seq_len;
  const int reps = flags.reps;

  try {
    cc::log::set_level(cc::log::Level::kWarn);
    const c10::Device device = flags.apply();
    c10::NoGradGuard no_grad;
    std::printf("device %s, %d intra-op threads, T = %lld, median of %d runs\n\n", device.str().c_str(), at::get_num_threads(),
                static_cast<long long>(seq_len), reps);
    std::printf("%-34s %12s %10s\n", "block", "time (ms)", "vs float");

    auto model = cc::bench::llama7b_block(device, at::kFloat);
    const at::Tensor ids = at::randint(model->config().vocab_size, {1, seq_len}, at::TensorOptions().dtype(at::kLong).device(device));
    const at::Tensor hidden = at::randn({1, seq_len, model->config().hidden_size}, at::TensorOptions().device(device));
    auto time_block = [&] {
      cc::ForwardState state = model->prepare(ids, {});
      return cc::bench::median_seconds(reps, device, [&] { (void)model->run_block(0, hidden, state); });
    };
    const double float_s = time_block();
    std::printf("%-34s %12.1f %9.2fx\n", "float", float_s * 1e3, 1.0);

    // Static ranges need one calibration pass; random tokens are enough to time it.
    cc::CalibrationSet calibration;
    at::Tensor cal = ids.cpu();
    calibration.sequences.emplace_back(cal.data_ptr<std::int64_t>(), cal.data_ptr<std::int64_t>() + seq_len);
    for (const char* name : {"w8a8-per-tensor-static", "w8a8-per-tensor-dynamic", "w8a8-per-token-dynamic"}) {
      cc::QuantRecipe recipe = cc::load_recipe(name);
      recipe.weights = cc::parse_quant_spec("off", cc::QuantRole::kWeight);  // weights: once, not per forward; keep them as timed
      cc::QuantizedModel quantized(*model, recipe, &calibration);
      const double s = time_block();
      std::printf("%-34s %12.1f %9.2fx\n", name, s * 1e3, s / float_s);
    }
  } catch (const cc::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return cc::exit_code(e.kind());
  }
  return 0;
}
