// How fast is the float forward pass on this machine?
//  1. prefill tokens/s of stories260K (the real llama2.c model) at its full context;
//  2. one LLaMA-7B-shaped block (hidden 4096, 32 heads, MLP 11008, T = 512, float32):
//     achieved FLOP/s, and that as a fraction of plain at::mm calls of the same matmul
//     shapes timed in the same run (the ceiling the block's matmuls could reach).
//
//   bench_forward [--seq-len 512] [--reps 5] [--threads N] [--device cpu]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <c10/core/GradMode.h>

#include "cushioncache/core/allocator.h"
#include "cushioncache/core/data_dir.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/tensor_options.h"
#include "cushioncache/model/llama.h"
#include "cushioncache/model/loader.h"
#include "bench_common.h"

namespace cc = cushioncache;

using cc::bench::median_seconds;

int main(int argc, char** argv) {
  cc::reuse_freed_host_memory();  // as the CLI does: measure what users run
  CLI::App app{"Forward-pass throughput: stories260K prefill and one LLaMA-7B-shaped block"};
  cc::bench::BlockFlags flags;
  flags.add_to(app);
  CLI11_PARSE(app, argc, argv);
  const std::int64_t seq_len = flags.seq_len;
  const int reps = flags.reps;

  try {
    const c10::Device device = flags.apply();
    c10::NoGradGuard no_grad;
    std::printf("device %s, %d intra-op threads (BLAS runs its own), T = %lld, median of %d runs\n\n", device.str().c_str(), at::get_num_threads(),
                static_cast<long long>(seq_len), reps);
    std::printf("%-34s %12s %14s %10s\n", "workload", "time (ms)", "throughput", "vs at::mm");

    if (auto bin = cc::find_data("models/stories260K/stories260K.bin")) {
      cc::LoadOptions load;
      load.device = device;
      auto model = cc::load_model(*bin, load);
      const std::int64_t T = std::min(seq_len, model->config().max_position_embeddings);
      at::Tensor ids = at::randint(3, model->config().vocab_size, {1, T}, at::TensorOptions().dtype(at::kLong).device(device));
      const double s = median_seconds(reps, device, [&] { (void)model->forward(ids); });
      std::printf("%-34s %12.2f %10.0f tok/s %10s\n", "stories260K prefill", s * 1e3, static_cast<double>(T) / s, "-");
    } else {
      std::printf("%-34s (skipped: stories260K not found under %s)\n", "stories260K prefill", cc::data_dir().c_str());
    }

    // One LLaMA-7B block with random weights, run through the staged API.
    const auto dtype = at::kFloat;
    const auto opts = at::TensorOptions().dtype(dtype).device(device);
    auto model = cc::bench::llama7b_block(device, dtype);
    const cc::ModelConfig& c = model->config();
    const std::int64_t T = seq_len, d = c.hidden_size, f = c.intermediate_size;
    at::Tensor ids = at::randint(c.vocab_size, {1, T}, at::TensorOptions().dtype(at::kLong).device(device));
    cc::ForwardState state = model->prepare(ids, {});
    at::Tensor hidden = at::randn({1, T, d}, opts);
    const double block_s = median_seconds(reps, device, [&] { (void)model->run_block(0, hidden, state); });

    // The same matmuls as plain at::mm / at::bmm on contiguous operands.
    const std::vector<std::pair<std::int64_t, std::int64_t>> linear_shapes = {{d, d}, {d, d}, {d, d}, {d, d}, {d, f}, {d, f}, {f, d}};
    std::vector<at::Tensor> inputs, weights;
    for (const auto& [in, out] : linear_shapes) {
      inputs.push_back(at::randn({T, in}, opts));
      weights.push_back(at::randn({in, out}, opts));
    }
    at::Tensor q = at::randn({c.num_heads, T, c.head_dim}, opts), kt = at::randn({c.num_heads, c.head_dim, T}, opts);
    at::Tensor p = at::randn({c.num_heads, T, T}, opts), v = at::randn({c.num_heads, T, c.head_dim}, opts);
    const double mm_s = median_seconds(reps, device, [&] {
      for (std::size_t i = 0; i < inputs.size(); ++i) (void)at::mm(inputs[i], weights[i]);
      (void)at::bmm(q, kt);
      (void)at::bmm(p, v);
    });
    double flops = 4.0 * static_cast<double>(T) * static_cast<double>(T) * static_cast<double>(d);  // QK^T and PV
    for (const auto& [in, out] : linear_shapes) flops += 2.0 * static_cast<double>(T) * static_cast<double>(in) * static_cast<double>(out);
    std::printf("%-34s %12.2f %8.1f GFLOP/s %9.2fx\n", "LLaMA-7B block (float32)", block_s * 1e3, flops / block_s / 1e9, mm_s / block_s);
    std::printf("%-34s %12.2f %8.1f GFLOP/s %10s\n", "  same matmuls as at::mm/bmm", mm_s * 1e3, flops / mm_s / 1e9, "1.00x");
    std::printf("%-34s %12.2f %8.1f tok/s\n", "  block prefill", block_s * 1e3, static_cast<double>(T) / block_s);
    std::printf("\nblock FLOPs counted: the 7 linear layers and the two attention matmuls, %.1f GFLOP per forward\n", flops / 1e9);
  } catch (const cc::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return cc::exit_code(e.kind());
  }
  return 0;
}
