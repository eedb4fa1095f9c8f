// `cushioncache train`: pretraining a LLaMA-family model from scratch (train/trainer.h).
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "commands.h"
#include "cushioncache/train/trainer.h"

namespace cushioncache::cli {

void add_train_command(CLI::App& app) {
  struct Flags {
    std::string config, output, device;
    std::int64_t steps = 0, stop_at = 0;
    bool resume = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("train", "Pretrain a LLaMA-family model from scratch; writes a Hugging Face model folder");
  cmd->add_option("--config", flags->config, "training config (configs/train-*.yaml)")->required();
  cmd->add_option("--output", flags->output, "model folder to write (overrides the config's output)");
  cmd->add_option("--device", flags->device, "cpu or cuda[:N] (overrides the config's device)");
  cmd->add_option("--steps", flags->steps, "optimizer steps (overrides the config's steps)")->check(positive());
  cmd->add_option("--stop-at", flags->stop_at, "save a checkpoint after this many steps and exit (continue with --resume)")
      ->check(positive());
  cmd->add_flag("--resume", flags->resume, "continue from the newest checkpoint in the output folder");
  cmd->callback([flags] {
    TrainConfig config = load_train_config(flags->config);
    if (!flags->output.empty()) config.output = flags->output;
    if (!flags->device.empty()) config.device = flags->device;
    if (flags->steps > 0) config.steps = flags->steps;
    TrainRunOptions options;
    options.resume = flags->resume;
    options.stop_at_step = flags->stop_at;
    const TrainResult result = train_model(config, options);
    if (result.steps < config.steps) {
      std::printf("stopped at step %lld of %lld; checkpoint in %s/checkpoints (continue with --resume)\n",
                  static_cast<long long>(result.steps), static_cast<long long>(config.steps), config.output.c_str());
      return;
    }
    std::printf("trained %lld steps (%lld tokens); final loss %.4f\n", static_cast<long long>(result.steps),
                static_cast<long long>(result.tokens), result.log.empty() ? 0.0 : result.log.back().loss);
    if (!result.probes.empty()) {
      const EmergenceProbe& p = result.probes.back();
      std::printf("%-6s %22s %26s %24s\n", "layer", "attention on position 0", "position-0 max / median", "down_proj max / median");
      for (std::size_t l = 0; l < p.attention_on_first.size(); ++l)
        std::printf("%-6zu %22.3f %26.1f %24.1f\n", l, p.attention_on_first[l], p.residual_first_ratio[l], p.down_proj_top_ratio[l]);
      if (p.float_ppl > 0) std::printf("perplexity on %s: float %.3f, %s %.3f\n", config.probe.data.c_str(), p.float_ppl, config.probe.quant.c_str(), p.quant_ppl);
    }
    std::printf("model: %s (training.json, loss.svg, sink_attention.svg, massive_activation.svg)\n", config.output.c_str());
  });
}

}  // namespace cushioncache::cli
