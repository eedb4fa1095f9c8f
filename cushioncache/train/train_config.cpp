#include "cushioncache/train/train_config.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cushioncache/core/data_dir.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/yaml_fields.h"

namespace cushioncache {

// The sections as the YAML spells them (keys = field names), for to_json(TrainConfig).
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TrainModelShape, hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size, rope_theta,
                                   norm_eps, tie_word_embeddings, init_std)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TrainOptimizer, lr, min_lr, warmup_steps, weight_decay, beta1, beta2, eps, grad_clip)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TrainProbe, data, samples, seq_len, ppl_windows, quant)

TrainConfig load_train_config(const std::string& path) {
  const YAML::Node root = load_yaml_file(path);
  YamlFields f(root, path, "");
  TrainConfig c;
  c.name = f.optional<std::string>("name").value_or(std::filesystem::path(path).stem().string());
  c.output = f.required<std::string>("output");
  c.corpus = expand_data_path(f.required<std::string>("corpus"));
  c.tokenizer = expand_data_path(f.optional<std::string>("tokenizer").value_or(c.tokenizer));
  c.device = f.optional<std::string>("device").value_or(c.device);
  c.precision = f.optional<std::string>("precision").value_or(c.precision);
  if (c.precision != "float32" && c.precision != "bfloat16")
    throw_error(ErrorKind::kInvalidConfig, "{}: 'precision' must be float32 or bfloat16, not '{}'", f.where("precision"), c.precision);
  if (YAML::Node n = f.child("model"); n && !n.IsNull()) {
    YamlFields m(n, path, "model");
    TrainModelShape& s = c.model;
    s.hidden_size = m.optional<std::int64_t>("hidden_size", at_least<std::int64_t>(1), ">= 1").value_or(s.hidden_size);
    s.num_layers = m.optional<std::int64_t>("num_layers", at_least<std::int64_t>(1), ">= 1").value_or(s.num_layers);
    s.num_heads = m.optional<std::int64_t>("num_heads", at_least<std::int64_t>(1), ">= 1").value_or(s.num_heads);
    s.num_kv_heads = m.optional<std::int64_t>("num_kv_heads", at_least<std::int64_t>(0), ">= 0").value_or(s.num_kv_heads);
    s.intermediate_size = m.optional<std::int64_t>("intermediate_size", at_least<std::int64_t>(1), ">= 1").value_or(s.intermediate_size);
    s.rope_theta = m.optional<double>("rope_theta", above(0.0), "> 0").value_or(s.rope_theta);
    s.norm_eps = m.optional<double>("norm_eps", above(0.0), "> 0").value_or(s.norm_eps);
    s.tie_word_embeddings = m.optional<bool>("tie_word_embeddings").value_or(s.tie_word_embeddings);
    s.init_std = m.optional<double>("init_std", above(0.0), "> 0").value_or(s.init_std);
    m.finish();
  }
  if (YAML::Node n = f.child("optimizer"); n && !n.IsNull()) {
    YamlFields o(n, path, "optimizer");
    TrainOptimizer& s = c.optimizer;
    s.lr = o.optional<double>("lr", above(0.0), "> 0").value_or(s.lr);
    s.min_lr = o.optional<double>("min_lr", at_least(0.0), ">= 0").value_or(s.min_lr);
    s.warmup_steps = o.optional<std::int64_t>("warmup_steps", at_least<std::int64_t>(0), ">= 0").value_or(s.warmup_steps);
    s.weight_decay = o.optional<double>("weight_decay", at_least(0.0), ">= 0").value_or(s.weight_decay);
    auto in_unit = [](double v) { return v >= 0 && v < 1; };
    s.beta1 = o.optional<double>("beta1", in_unit, "in [0, 1)").value_or(s.beta1);
    s.beta2 = o.optional<double>("beta2", in_unit, "in [0, 1)").value_or(s.beta2);
    s.eps = o.optional<double>("eps", above(0.0), "> 0").value_or(s.eps);
    s.grad_clip = o.optional<double>("grad_clip", at_least(0.0), ">= 0 (0: off)").value_or(s.grad_clip);
    o.finish();
  }
  c.steps = f.optional<std::int64_t>("steps", at_least<std::int64_t>(1), ">= 1").value_or(c.steps);
  c.batch_size = f.optional<std::int64_t>("batch_size", at_least<std::int64_t>(1), ">= 1").value_or(c.batch_size);
  c.grad_accum = f.optional<std::int64_t>("grad_accum", at_least<std::int64_t>(1), ">= 1").value_or(c.grad_accum);
  c.seq_len = f.optional<std::int64_t>("seq_len", at_least<std::int64_t>(2), ">= 2").value_or(c.seq_len);
  c.seed = f.optional<std::uint64_t>("seed").value_or(c.seed);
  c.log_every = f.optional<std::int64_t>("log_every", at_least<std::int64_t>(1), ">= 1").value_or(c.log_every);
  c.checkpoint_every = f.optional<std::int64_t>("checkpoint_every", at_least<std::int64_t>(1), ">= 1").value_or(c.checkpoint_every);
  c.threads = f.optional<std::int64_t>("threads", at_least<std::int64_t>(0), ">= 0 (0: default)").value_or(c.threads);
  if (YAML::Node n = f.child("probe"); n && !n.IsNull()) {
    YamlFields p(n, path, "probe");
    TrainProbe& s = c.probe;
    s.data = expand_data_path(p.optional<std::string>("data").value_or(s.data));
    s.samples = p.optional<std::int64_t>("samples", at_least<std::int64_t>(1), ">= 1").value_or(s.samples);
    s.seq_len = p.optional<std::int64_t>("seq_len", at_least<std::int64_t>(2), ">= 2").value_or(s.seq_len);
    s.ppl_windows = p.optional<std::int64_t>("ppl_windows", at_least<std::int64_t>(0), ">= 0 (0: skip)").value_or(s.ppl_windows);
    s.quant = p.optional<std::string>("quant").value_or(s.quant);
    p.finish();
  }
  f.finish();
  try {
    validate(c);
  } catch (const Error& e) {
    throw_error(ErrorKind::kInvalidConfig, "{}: {}", path, e.message());
  }
  return c;
}

void validate(const TrainConfig& c) {
  const TrainModelShape& m = c.model;
  if (m.hidden_size % m.num_heads != 0)
    throw_error(ErrorKind::kInvalidConfig, "model.hidden_size ({}) must be a multiple of model.num_heads ({})", m.hidden_size, m.num_heads);
  if ((m.hidden_size / m.num_heads) % 2 != 0)
    throw_error(ErrorKind::kInvalidConfig, "the head size hidden_size / num_heads ({}) must be even for rotary positions",
                m.hidden_size / m.num_heads);
  const std::int64_t kv = m.num_kv_heads == 0 ? m.num_heads : m.num_kv_heads;
  if (m.num_heads % kv != 0)
    throw_error(ErrorKind::kInvalidConfig, "model.num_heads ({}) must be a multiple of model.num_kv_heads ({})", m.num_heads, kv);
  if (c.optimizer.min_lr > c.optimizer.lr)
    throw_error(ErrorKind::kInvalidConfig, "optimizer.min_lr ({}) is above optimizer.lr ({})", c.optimizer.min_lr, c.optimizer.lr);
  if (c.steps < 1 || c.batch_size < 1 || c.grad_accum < 1 || c.seq_len < 2 || c.checkpoint_every < 1 || c.log_every < 1)
    throw_error(ErrorKind::kInvalidConfig, "steps, batch_size, grad_accum, checkpoint_every, log_every must be >= 1 and seq_len >= 2");
  if (c.output.empty()) throw_error(ErrorKind::kInvalidConfig, "'output' is empty");
  if (c.corpus.empty()) throw_error(ErrorKind::kInvalidConfig, "'corpus' is empty");
  if (c.precision != "float32" && c.precision != "bfloat16")
    throw_error(ErrorKind::kInvalidConfig, "'precision' must be float32 or bfloat16, not '{}'", c.precision);
}

nlohmann::json to_json(const TrainConfig& c) {
  return {{"name", c.name},
          {"output", c.output},
          {"corpus", c.corpus},
          {"tokenizer", c.tokenizer},
          {"device", c.device},
          {"precision", c.precision},
          {"model", c.model},
          {"optimizer", c.optimizer},
          {"steps", c.steps},
          {"batch_size", c.batch_size},
          {"grad_accum", c.grad_accum},
          {"seq_len", c.seq_len},
          {"seed", c.seed},
          {"log_every", c.log_every},
          {"checkpoint_every", c.checkpoint_every},
          {"threads", c.threads},
          {"probe", c.probe}};
}

double learning_rate_at(const TrainOptimizer& o, std::int64_t step, std::int64_t steps) {
  if (step < o.warmup_steps) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  const std::int64_t decay_steps = steps - o.warmup_steps;
  if (decay_steps <= 0) return o.lr;
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) / static_cast<double>(decay_steps));
  return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace cushioncache
