// End to end: the prefill time of a whole model in W8A8 on the INT8 kernels (`--exec
// int8`: static per-tensor activation scales, per-channel int8 weights) against the same
// model in float, one sequence of T random tokens.
//   default: stories260K (the real llama2.c model) on the CPU, at its full context;
//   --llama7b-layers N: a LLaMA-7B-shaped model with random weights (N blocks, vocabulary
//   32000; on a GPU --device cuda --dtype bfloat16 --llama7b-layers 32 --seq-len 2048).
// Calibration (for the static scales) runs on 4 random sequences and is not timed.
//
//   bench_prefill [--device cpu] [--dtype float32] [--seq-len 2048] [--reps 5] [--llama7b-layers 0]
#include <cstdio>
#include <memory>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>  // c10::NoGradGuard: ATen.h no longer brings it in PyTorch 2.x
#include <CLI/CLI.hpp>

#include "cushioncache/core/allocator.h"
#include "cushioncache/core/data_dir.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/tensor_options.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/quant/calibration.h"
#include "cushioncache/quant/quantize_model.h"
#include "cushioncache/quant/recipe.h"
#include "bench_common.h"

namespace cc = cushioncache;

namespace {

std::int64_t weight_bytes(cc::CausalLM& model) {
  std::int64_t bytes = 0;
  for (const auto& [name, tensor] : model.named_weights()) bytes += tensor->numel() * static_cast<std::int64_t>(tensor->element_size());
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  cc::reuse_freed_host_memory();
  CLI::App app{"Prefill time, W8A8 on the INT8 kernels vs float: stories260K or a LLaMA-7B-shaped model"};
  std::string device_name = "cpu", dtype_name = "float32";
  std::int64_t seq_len = 2048;
  int reps = 5, threads = 0, llama7b_layers = 0;
  app.add_option("--device", device_name, "cpu or cuda")->capture_default_str();
  app.add_option("--dtype", dtype_name, "the float model's dtype (float32, bfloat16, float16)")->capture_default_str();
  app.add_option("--seq-len", seq_len, "tokens per prefill (capped at the model's context)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--reps", reps, "timed repetitions (median reported)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "CPU intra-op threads (0 = LibTorch default)")->capture_default_str();
  app.add_option("--llama7b-layers", llama7b_layers, "a random LLaMA-7B-shaped model with this many blocks instead of stories260K")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  try {
    if (threads > 0) at::set_num_threads(threads);
    const c10::Device device = cc::parse_device(device_name);
    const c10::ScalarType dtype = cc::parse_float_dtype(dtype_name);
    c10::NoGradGuard no_grad;

    // Each variant gets a fresh model: quantization changes weights in place.
    std::function<std::unique_ptr<cc::CausalLM>()> make_model;
    std::string label;
    if (llama7b_layers > 0) {
      label = fmt::format("LLaMA-7B-shaped, {} blocks, random weights", llama7b_layers);
      make_model = [&] {
        at::manual_seed(0);
        return std::unique_ptr<cc::CausalLM>(cc::bench::random_llama(cc::bench::llama7b_config(llama7b_layers, 32000), device, dtype));
      };
    } else {
      const auto bin = cc::find_data("models/stories260K/stories260K.bin");
      if (!bin) cc::throw_error(cc::ErrorKind::kNotFound, "stories260K not found under {} (or pass --llama7b-layers N)", cc::data_dir().string());
      label = "stories260K";
      make_model = [&, path = *bin] {
        cc::LoadOptions load;
        load.device = device;
        load.dtype = dtype;
        return cc::load_model(path, load);
      };
    }

    auto model = make_model();
    const std::int64_t T = std::min(seq_len, model->config().max_position_embeddings);
    const std::int64_t vocab = model->config().vocab_size;
    const at::Tensor ids = at::randint(3, vocab, {1, T}, at::TensorOptions().dtype(at::kLong).device(device));
    std::printf("%s on %s, %s, T = %lld, %d intra-op threads, median of %d runs\n\n", label.c_str(), device.str().c_str(),
                c10::toString(dtype), static_cast<long long>(T), at::get_num_threads(), reps);
    std::printf("%-28s %12s %12s %10s %14s\n", "variant", "prefill ms", "tok/s", "speedup", "weight MB");

    const double t_float = cc::bench::median_seconds(reps, device, [&] { (void)model->forward(ids); });
    std::printf("%-28s %12.2f %12.0f %9.2fx %14.1f\n", c10::toString(dtype), 1e3 * t_float, static_cast<double>(T) / t_float, 1.0,
                static_cast<double>(weight_bytes(*model)) / 1e6);
    std::fflush(stdout);
    model.reset();

    auto quantized_model = make_model();
    cc::CalibrationSet calibration;
    for (int i = 0; i < 4; ++i) {
      const at::Tensor seq = at::randint(3, vocab, {std::min<std::int64_t>(T, 512)}, at::kLong);
      calibration.sequences.emplace_back(seq.data_ptr<std::int64_t>(), seq.data_ptr<std::int64_t>() + seq.numel());
    }
    calibration.description = "4 random sequences";
    const cc::QuantRecipe recipe = cc::load_recipe("w8a8-per-tensor-static");
    cc::QuantizedModel quantized(*quantized_model, recipe, &calibration);
    quantized.execute_int8();
    const double t_int8 = cc::bench::median_seconds(reps, device, [&] { (void)quantized_model->forward(ids); });
    std::printf("%-28s %12.2f %12.0f %9.2fx %14.1f\n", "w8a8 --exec int8", 1e3 * t_int8, static_cast<double>(T) / t_int8, t_float / t_int8,
                static_cast<double>(weight_bytes(*quantized_model)) / 1e6);
  } catch (const cc::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return cc::exit_code(e.kind());
  }
  return 0;
}
