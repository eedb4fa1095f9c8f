// `cushioncache plan-memory`: where a model's weights would sit on a GPU under
// --max-gpu-memory, from its config.json alone (no weights are read, so a 70B plan runs
// anywhere), and a first-order time model of the streamed blocks' copies.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/files.h"
#include "cushioncache/core/memory_usage.h"
#include "cushioncache/core/tensor_options.h"
#include "cushioncache/model/config.h"
#include "cushioncache/model/loader.h"

namespace cushioncache::cli {

void add_plan_memory_command(CLI::App& app) {
  struct Flags {
    std::string model, dtype = "bfloat16", max_gpu_memory, out;
    double link_gbps = 25.0, tflops = 400.0;
    std::int64_t tokens = 0;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("plan-memory", "Plan --max-gpu-memory for a model from its config.json: resident and streamed "
                                                    "blocks, bytes copied per forward, when the copies hide behind compute");
  cmd->add_option("--model", flags->model, "Hugging Face model folder or its config.json (weights are not needed)")->required();
  cmd->add_option("--dtype", flags->dtype, "the dtype the weights run in (float32, bfloat16, float16)")->capture_default_str();
  cmd->add_option("--max-gpu-memory", flags->max_gpu_memory, "device memory the weights may take, e.g. 60GiB")->required();
  cmd->add_option("--link-gbps", flags->link_gbps, "host-to-device bandwidth in GB/s for the time model (PCIe 4.0 x16 ~25, 5.0 ~50)")
      ->capture_default_str()->check(positive());
  cmd->add_option("--tflops", flags->tflops, "matmul TFLOP/s the GPU reaches on the blocks, for the time model")
      ->capture_default_str()->check(positive());
  cmd->add_option("--tokens", flags->tokens, "tokens per forward (batch x sequence) to time; 0: only the break-even point")
      ->capture_default_str()->check(non_negative());
  cmd->add_option("--out", flags->out, "also write the plan as JSON");
  cmd->callback([flags] {
    std::filesystem::path config_path = flags->model;
    if (std::filesystem::is_directory(config_path)) config_path /= "config.json";
    const ModelConfig config = read_hf_config(config_path);
    const c10::ScalarType dtype = parse_float_dtype(flags->dtype);
    const std::int64_t budget = parse_byte_size(flags->max_gpu_memory, "--max-gpu-memory");
    StreamingPlan plan;
    naming_budget_flag(flags->max_gpu_memory, [&] { plan = plan_streaming(config, dtype, budget); });

    const int blocks = config.num_layers, resident = plan.placement.resident_blocks, streamed = blocks - resident;
    const std::int64_t all_blocks = std::accumulate(plan.block_bytes.begin(), plan.block_bytes.end(), std::int64_t{0});
    const std::int64_t largest = blocks > 0 ? *std::max_element(plan.block_bytes.begin(), plan.block_bytes.end()) : 0;
    std::int64_t streamed_bytes = 0;
    for (int l = resident; l < blocks; ++l) streamed_bytes += plan.block_bytes[static_cast<std::size_t>(l)];
    // A block's matmuls cost 2 FLOP per weight per token (attention scores and the
    // element-wise work are left out: a lower bound on compute, so the break-even point
    // is an upper bound on the tokens needed).
    const double element = static_cast<double>(c10::elementSize(dtype));
    const double block_params = static_cast<double>(largest) / element;
    const double copy_seconds = static_cast<double>(largest) / (flags->link_gbps * 1e9);
    const double break_even_tokens = copy_seconds * flags->tflops * 1e12 / (2.0 * block_params);

    fmt::print("model            {} ({} blocks), weights in {}\n", config.model_type, blocks, c10::toString(dtype));
    fmt::print("weights          {} in all: blocks {} (largest {}), embeddings/norm/head {}\n", format_bytes(all_blocks + plan.other_bytes),
               format_bytes(all_blocks), format_bytes(largest), format_bytes(plan.other_bytes));
    fmt::print("budget           {}: {} blocks resident, {} streamed; the weights take {} of the device at most\n", format_bytes(budget),
               resident, streamed, format_bytes(plan.placement.peak_device_bytes));
    if (streamed > 0) {
      fmt::print("per forward      {} copied host -> device: {:.3f} s at {} GB/s if none of it overlaps compute\n",
                 format_bytes(streamed_bytes), static_cast<double>(streamed_bytes) / (flags->link_gbps * 1e9), flags->link_gbps);
      fmt::print("overlap          a block's copy ({:.1f} ms) hides behind the previous block's compute from {:.0f} tokens per "
                 "forward up (at {} TFLOP/s)\n",
                 1e3 * copy_seconds, break_even_tokens, flags->tflops);
      if (flags->tokens > 0) {
        const double compute = 2.0 * block_params * static_cast<double>(flags->tokens) / (flags->tflops * 1e12);
        const double per_forward = resident * compute + streamed * std::max(compute, copy_seconds);
        fmt::print("{:<16} {:.3f} s per forward (blocks only; {} per block computing, the streamed ones bound by max(compute, copy))\n",
                   fmt::format("{} tokens", flags->tokens), per_forward, fmt::format("{:.1f} ms", 1e3 * compute));
      }
    }
    if (!flags->out.empty()) {
      nlohmann::json j{{"model_type", config.model_type},
                       {"num_layers", blocks},
                       {"dtype", c10::toString(dtype)},
                       {"budget_bytes", budget},
                       {"block_bytes", plan.block_bytes},
                       {"other_bytes", plan.other_bytes},
                       {"resident_blocks", resident},
                       {"streamed_blocks", streamed},
                       {"peak_device_bytes", plan.placement.peak_device_bytes},
                       {"streamed_bytes_per_forward", streamed_bytes},
                       {"link_gbps", flags->link_gbps},
                       {"tflops", flags->tflops},
                       {"block_copy_seconds", copy_seconds},
                       {"break_even_tokens", break_even_tokens}};
      write_file_atomically(flags->out, [&](std::ostream& os) { os << j.dump(2) << "\n"; });
    }
  });
}

}  // namespace cushioncache::cli
