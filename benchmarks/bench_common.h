// Helpers shared by the benchmark executables: timing and the LLaMA-7B-shaped block.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include "cushioncache/core/tensor_options.h"
#include "cushioncache/model/llama.h"

namespace cushioncache::bench {

// --seq-len, --reps, --threads and --device, for the block benchmarks.
struct BlockFlags {
  std::int64_t seq_len = 512;
  int reps = 5;
  int threads = 0;
  std::string device = "cpu";

  void add_to(CLI::App& app) {
    app.add_option("--seq-len", seq_len, "tokens per forward")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--reps", reps, "timed repetitions (median reported)")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--threads", threads, "intra-op threads (0 = LibTorch default)")->capture_default_str();
    app.add_option("--device", device, "cpu or cuda")->capture_default_str();
  }
  // Applies --threads and returns the device.
  c10::Device apply() const {
    if (threads > 0) at::set_num_threads(threads);
    return parse_device(device);
  }
};

inline void synchronize(const c10::Device& device) {
  // A tiny device-to-host copy waits for every queued kernel on the current stream.
  if (device.is_cuda()) (void)at::zeros({1}, at::TensorOptions().device(device)).item<float>();
}

// Median wall time of `reps` runs after one warm-up run.
inline double median_seconds(int reps, const c10::Device& device, const std::function<void()>& fn) {
  fn();
  synchronize(device);
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    synchronize(device);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// A LLaMA-architecture model with random weights (N(0, 0.02), norms at 1): the shapes and
// the arithmetic of a real checkpoint, for timing.
inline std::unique_ptr<LlamaModel> random_llama(const ModelConfig& config, const c10::Device& device, c10::ScalarType dtype) {
  const auto opts = at::TensorOptions().dtype(dtype).device(device);
  return std::make_unique<LlamaModel>(config, [&](const std::string& name, const std::vector<std::int64_t>& shape) {
    return name.find("norm") != std::string::npos ? at::ones(shape, opts) : at::randn(shape, opts) * 0.02;
  });
}

// LLaMA-7B's shapes (hidden 4096, 32 heads, MLP 11008) with `layers` blocks and a
// `vocab`-token embedding and head.
inline ModelConfig llama7b_config(int layers, std::int64_t vocab) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.hidden_size = 4096;
  c.intermediate_size = 11008;
  c.num_layers = layers;
  c.num_heads = 32;
  c.num_kv_heads = 32;
  c.head_dim = 128;
  c.max_position_embeddings = 4096;
  c.norm_eps = 1e-5;
  return c;
}

// One LLaMA-7B block; the embedding and head are tiny, since only run_block() is timed.
inline std::unique_ptr<LlamaModel> llama7b_block(const c10::Device& device, c10::ScalarType dtype) {
  return random_llama(llama7b_config(1, 256), device, dtype);
}

}  // namespace cushioncache::bench
