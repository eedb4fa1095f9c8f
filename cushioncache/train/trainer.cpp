#include "cushioncache/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/types.h>  // clip_grad.h does not include what it uses
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/version.h>

#include "cushioncache/analysis/inspect.h"
#include "cushioncache/analysis/svg_chart.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/files.h"
#include "cushioncache/core/interrupt.h"
#include "cushioncache/core/log.h"
#include "cushioncache/core/optimizer_state.h"
#include "cushioncache/core/progress.h"
#include "cushioncache/core/tensor_options.h"
#include "cushioncache/io/corpus.h"
#include "cushioncache/io/json_file.h"
#include "cushioncache/model/family.h"
#include "cushioncache/model/identity.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/pipeline/quantized_eval.h"
#include "cushioncache/tokenizer/hf_tokenizer.h"

namespace cushioncache {
namespace fs = std::filesystem;
using nlohmann::json;

// training.json's entries, written and read back on resume.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TrainLogEntry, step, loss, lr, grad_norm, tokens_per_second)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(EmergenceProbe, step, tokens, attention_on_first, residual_first_ratio, residual_first_channel,
                                   residual_top_ratio, residual_top_position, down_proj_top_ratio, down_proj_top_position,
                                   down_proj_top_channel, float_ppl, quant_ppl)

namespace {

// Training keeps float32 weights (autocast handles bfloat16), all resident.
LoadOptions float32_on(c10::Device device) {
  LoadOptions options;
  options.device = device;
  options.dtype = at::kFloat;
  return options;
}

constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kOptimizerFile = "optimizer.pt";

// Fields that may change between a run and its resumption without changing what is
// trained; everything else in to_json(TrainConfig) must match.
bool may_change_on_resume(const std::string& key) {
  return key == "log_every" || key == "checkpoint_every" || key == "probe" || key == "threads" || key == "name" || key == "output" ||
         key == "steps";
}

// Turns on autocast to bfloat16 for the device while alive (float32 weights, optimizer
// and loss; the matmuls in bfloat16).
class BFloat16Autocast {
 public:
  BFloat16Autocast(c10::DeviceType device, bool enabled) : device_(device), enabled_(enabled) {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(device_, true);
    at::autocast::set_autocast_dtype(device_, at::kBFloat16);
#else
    if (device_ == c10::DeviceType::CUDA) {
      at::autocast::set_enabled(true);
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    } else {
      at::autocast::set_cpu_enabled(true);
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    }
#endif
  }
  ~BFloat16Autocast() {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(device_, false);
#else
    if (device_ == c10::DeviceType::CUDA) at::autocast::set_enabled(false);
    else at::autocast::set_cpu_enabled(false);
#endif
    at::autocast::clear_cache();
  }
  BFloat16Autocast(const BFloat16Autocast&) = delete;
  BFloat16Autocast& operator=(const BFloat16Autocast&) = delete;

 private:
  c10::DeviceType device_;
  bool enabled_;
};

// The corpus as one token stream: every document, then EOS.
struct TokenStream {
  std::vector<std::int32_t> tokens;
  std::int64_t documents = 0;
};

TokenStream tokenize_corpus(const Tokenizer& tokenizer, const std::string& corpus) {
  const std::vector<std::string> documents = load_documents(corpus);
  TokenStream stream;
  Progress progress("tokenize corpus", static_cast<std::int64_t>(documents.size()), "docs");
  for (const auto& doc : documents) {
    for (std::int64_t id : tokenizer.encode(doc, BosPolicy::kNo)) stream.tokens.push_back(static_cast<std::int32_t>(id));
    if (auto eos = tokenizer.eos_id()) stream.tokens.push_back(static_cast<std::int32_t>(*eos));
    ++stream.documents;
    progress.advance();
  }
  progress.finish();
  return stream;
}

// Micro-batch `micro` of step `step`: [batch, seq_len] int64, BOS then a corpus window.
at::Tensor sample_batch(const TokenStream& stream, std::int64_t bos, const TrainConfig& config, std::int64_t step, std::int64_t micro) {
  const std::int64_t body = config.seq_len - 1;
  const std::int64_t last_start = static_cast<std::int64_t>(stream.tokens.size()) - body;
  std::seed_seq seq{static_cast<std::uint32_t>(config.seed), static_cast<std::uint32_t>(config.seed >> 32),
                    static_cast<std::uint32_t>(step), static_cast<std::uint32_t>(micro)};
  std::mt19937_64 rng(seq);
  std::uniform_int_distribution<std::int64_t> start(0, last_start);
  at::Tensor ids = at::empty({config.batch_size, config.seq_len}, at::kLong);
  auto* out = ids.data_ptr<std::int64_t>();
  for (std::int64_t b = 0; b < config.batch_size; ++b) {
    const std::int64_t s = start(rng);
    out[b * config.seq_len] = bos;
    for (std::int64_t t = 0; t < body; ++t) out[b * config.seq_len + 1 + t] = stream.tokens[static_cast<std::size_t>(s + t)];
  }
  return ids;
}

ModelConfig model_config_for(const TrainConfig& config, const Tokenizer& tokenizer) {
  const TrainModelShape& s = config.model;
  ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = tokenizer.vocab_size();
  c.hidden_size = s.hidden_size;
  c.intermediate_size = s.intermediate_size;
  c.num_layers = static_cast<int>(s.num_layers);
  c.num_heads = s.num_heads;
  c.num_kv_heads = s.num_kv_heads == 0 ? s.num_heads : s.num_kv_heads;
  c.head_dim = s.hidden_size / s.num_heads;
  c.max_position_embeddings = std::max(config.seq_len, config.probe.seq_len);
  c.norm_eps = s.norm_eps;
  c.rope_theta = s.rope_theta;
  c.tie_word_embeddings = s.tie_word_embeddings;
  c.bos_token_id = tokenizer.bos_id();
  if (auto eos = tokenizer.eos_id()) c.eos_token_ids = {*eos};
  c.validate();
  return c;
}

// transformers' LLaMA initialisation: every matrix N(0, init_std), norm gains 1.
HfWeights initial_weights(const ModelConfig& config, const TrainModelShape& shape, std::uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  HfWeights w;
  w.config = config;
  for (const auto& [name, dims] : model_family(config.model_type).expected_weights(config)) {
    const bool norm = name.find("norm") != std::string::npos;
    w.tensors[name] = norm ? at::ones(dims, at::kFloat) : at::randn(dims, gen, at::kFloat) * shape.init_std;
  }
  return w;
}

fs::path step_folder(const fs::path& output, std::int64_t step) { return output / "checkpoints" / fmt::format("step-{:06d}", step); }

// The newest checkpoint that holds a trainer state (written last, so its presence means
// the checkpoint is complete).
std::optional<fs::path> latest_resumable(const fs::path& output) {
  std::optional<fs::path> best;
  std::error_code ec;
  if (!fs::is_directory(output / "checkpoints", ec)) return best;
  for (const auto& entry : fs::directory_iterator(output / "checkpoints")) {
    if (!fs::exists(entry.path() / kStateFile) || !fs::exists(entry.path() / kOptimizerFile)) continue;
    if (!best || entry.path().filename().string() > best->filename().string()) best = entry.path();
  }
  return best;
}

std::vector<double> column(const std::vector<EmergenceProbe>& probes, std::vector<double> EmergenceProbe::*field, std::size_t layer) {
  std::vector<double> out;
  for (const auto& p : probes) out.push_back(layer < (p.*field).size() ? (p.*field)[layer] : std::nan(""));
  return out;
}

void write_curves(const fs::path& output, const TrainResult& result, int layers) {
  std::vector<double> steps, losses;
  for (const auto& e : result.log) {
    steps.push_back(static_cast<double>(e.step));
    losses.push_back(e.loss);
  }
  write_file_atomically(output / "loss.svg", [&](std::ostream& out) {
    out << line_chart_svg({{"training loss", steps, losses}},
                          {"Training loss", "optimizer step", "cross-entropy (nats/token)", false});
  });
  if (result.probes.empty()) return;
  std::vector<double> probe_steps;
  for (const auto& p : result.probes) probe_steps.push_back(static_cast<double>(p.step));
  std::vector<ChartSeries> attention, residual;
  for (int l = 0; l < layers; ++l) {
    const std::string label = fmt::format("layer {}", l);
    attention.push_back({label, probe_steps, column(result.probes, &EmergenceProbe::attention_on_first, static_cast<std::size_t>(l))});
    residual.push_back({label, probe_steps, column(result.probes, &EmergenceProbe::residual_first_ratio, static_cast<std::size_t>(l))});
  }
  write_file_atomically(output / "sink_attention.svg", [&](std::ostream& out) {
    out << line_chart_svg(attention, {"Attention on position 0 (BOS) during training", "optimizer step",
                                      "mean attention mass on position 0", false});
  });
  write_file_atomically(output / "massive_activation.svg", [&](std::ostream& out) {
    out << line_chart_svg(residual, {"Position-0 residual outlier during training", "optimizer step",
                                     "max |x| at position 0 / median |x| (block input)", true});
  });
}

void save_tokenizer(const TrainConfig& config, const fs::path& folder) {
  if (config.tokenizer == "bytes") {
    write_byte_level_tokenizer(folder, std::max(config.seq_len, config.probe.seq_len));
    return;
  }
  const bool folder_given = fs::is_directory(config.tokenizer);
  const fs::path source = folder_given ? fs::path(config.tokenizer) : fs::path(config.tokenizer).parent_path();
  const fs::path json_file = folder_given ? source / "tokenizer.json" : fs::path(config.tokenizer);
  fs::create_directories(folder);
  fs::copy_file(json_file, folder / "tokenizer.json", fs::copy_options::overwrite_existing);
  if (fs::exists(source / "tokenizer_config.json"))
    fs::copy_file(source / "tokenizer_config.json", folder / "tokenizer_config.json", fs::copy_options::overwrite_existing);
}

std::unique_ptr<Tokenizer> training_tokenizer(const TrainConfig& config, const fs::path& output) {
  if (config.tokenizer == "bytes") {
    save_tokenizer(config, output);
    return load_tokenizer(output);
  }
  if (!fs::exists(config.tokenizer)) throw_error(ErrorKind::kNotFound, "tokenizer '{}' does not exist", config.tokenizer);
  return load_tokenizer(config.tokenizer);
}

}  // namespace

json to_json(const EmergenceProbe& p) { return json(p); }

json to_json(const TrainResult& r) { return {{"steps", r.steps}, {"tokens", r.tokens}, {"log", r.log}, {"probes", r.probes}}; }

EmergenceProbe probe_emergence(const fs::path& model_folder, const TrainProbe& probe, const fs::path& report_folder) {
  auto model = load_model(model_folder);
  auto tokenizer = load_tokenizer(model_folder);
  InspectOptions options;
  options.windows.data = probe.data;
  options.windows.samples = probe.samples;
  options.windows.seq_len = probe.seq_len;
  options.first_keys = 1;
  const Inspection inspection = inspect_model(*model, *tokenizer, options, nullptr);
  if (!report_folder.empty()) write_inspection(inspection, describe_model(*model, model_folder.string()), report_folder);

  const ActivationReport& report = inspection.without_prefix;
  EmergenceProbe p;
  const int layers = model->config().num_layers;
  for (int l = 0; l < layers; ++l) {
    p.attention_on_first.push_back(report.attention[static_cast<std::size_t>(l)].mass_on_first.at(0));
    for (const SiteStats& s : report.sites) {
      if (s.layer != l) continue;
      const double median = std::max(s.median, std::numeric_limits<double>::min());
      if (s.site == Site::kBlockInput) {
        const double first = report.token_max[static_cast<std::size_t>(l)].at(0);
        p.residual_first_ratio.push_back(first / median);
        p.residual_first_channel.push_back(s.top1_position == 0 ? s.top1_channel : -1);
        p.residual_top_ratio.push_back(s.top1 / median);
        p.residual_top_position.push_back(s.top1_position);
      } else if (s.site == Site::kDownProjInput) {
        p.down_proj_top_ratio.push_back(s.top1 / median);
        p.down_proj_top_position.push_back(s.top1_position);
        p.down_proj_top_channel.push_back(s.top1_channel);
      }
    }
  }
  if (probe.ppl_windows > 0) {
    VariantPlan plan;
    plan.variants = {"float", probe.quant};
    plan.evaluation.corpora = {probe.data};
    plan.evaluation.max_windows = probe.ppl_windows;
    plan.evaluation.seq_len = probe.seq_len;
    const auto results = evaluate_variants([&] { return load_model(model_folder); }, *tokenizer, plan, model_folder.string());
    p.float_ppl = results.at(0).report.perplexity.at(0).result.perplexity;
    p.quant_ppl = results.at(1).report.perplexity.at(0).result.perplexity;
  }
  return p;
}

TrainResult train_model(const TrainConfig& config, const TrainRunOptions& options) {
  validate(config);
  if (config.threads > 0) at::set_num_threads(static_cast<int>(config.threads));
  const fs::path output = config.output;
  fs::create_directories(output);
  const c10::Device device = parse_device(config.device);
  const bool bf16 = config.precision == "bfloat16";

  auto tokenizer = training_tokenizer(config, output);
  if (!tokenizer->bos_id())
    throw_error(ErrorKind::kInvalidConfig, "tokenizer '{}' defines no BOS token; every training sequence starts with one", config.tokenizer);
  const std::int64_t bos = *tokenizer->bos_id();
  const TokenStream stream = tokenize_corpus(*tokenizer, config.corpus);
  if (static_cast<std::int64_t>(stream.tokens.size()) < config.seq_len)
    throw_error(ErrorKind::kInvalidConfig, "corpus '{}' has {} tokens, fewer than one sequence of seq_len {}", config.corpus,
                stream.tokens.size(), config.seq_len);
  log::info("train: corpus {} documents, {} tokens ({}); tokenizer {}", stream.documents, stream.tokens.size(), config.corpus,
            tokenizer->describe());

  const ModelConfig model_config = model_config_for(config, *tokenizer);
  TrainResult result;
  std::int64_t start_step = 0;
  std::unique_ptr<CausalLM> model;
  std::optional<fs::path> resume_from;
  if (options.resume) {
    resume_from = latest_resumable(output);
    if (!resume_from)
      throw_error(ErrorKind::kNotFound, "{}: no checkpoint to resume from (none holds {} and {})", (output / "checkpoints").string(),
                  kStateFile, kOptimizerFile);
    const json state = read_json_file(*resume_from / kStateFile);
    const json saved = state.at("config");
    const json now = to_json(config);
    for (const auto& [key, value] : now.items()) {
      if (may_change_on_resume(key)) continue;
      if (!saved.contains(key) || saved.at(key) != value)
        throw_error(ErrorKind::kMismatch, "{}: config field '{}' was {} when the checkpoint was written and is {} now",
                    (*resume_from / kStateFile).string(), key, saved.contains(key) ? saved.at(key).dump() : "absent", value.dump());
    }
    if (state.at("corpus_tokens").get<std::int64_t>() != static_cast<std::int64_t>(stream.tokens.size()))
      throw_error(ErrorKind::kMismatch, "{}: the corpus had {} tokens when the checkpoint was written and has {} now",
                  (*resume_from / kStateFile).string(), state.at("corpus_tokens").get<std::int64_t>(), stream.tokens.size());
    start_step = state.at("step").get<std::int64_t>();
    if (start_step >= config.steps)
      throw_error(ErrorKind::kInvalidConfig, "{}: the checkpoint is at step {}, not before the config's steps ({})", resume_from->string(),
                  start_step, config.steps);
    model = load_model(*resume_from, float32_on(device));
    // The loaded weights are views of the checkpoint file's map: own them before training.
    for (auto& [name, tensor] : model->named_weights()) *tensor = tensor->clone();
    const json previous = read_json_file(output / "training.json");
    result.log = previous.at("log").get<std::vector<TrainLogEntry>>();
    result.probes = previous.at("probes").get<std::vector<EmergenceProbe>>();
    result.log.erase(std::remove_if(result.log.begin(), result.log.end(), [&](const TrainLogEntry& e) { return e.step > start_step; }),
                     result.log.end());
    result.probes.erase(
        std::remove_if(result.probes.begin(), result.probes.end(), [&](const EmergenceProbe& p) { return p.step > start_step; }),
        result.probes.end());
    log::info("train: resuming {} at step {}", resume_from->string(), start_step);
  } else {
    if (latest_resumable(output))
      throw_error(ErrorKind::kInvalidArgument, "{} already holds training checkpoints; resume them (the resume option) or choose another output",
                  output.string());
    model = build_model(initial_weights(model_config, config.model, config.seed), float32_on(device));
  }

  // Decay on matrices and embeddings; none on norm gains (as nanoGPT and most LLaMA
  // pretraining recipes do).
  std::vector<at::Tensor> decay, no_decay;
  std::int64_t parameter_count = 0;
  for (auto& [name, tensor] : model->named_weights()) {
    tensor->requires_grad_(true);
    parameter_count += tensor->numel();
    (tensor->dim() >= 2 ? decay : no_decay).push_back(*tensor);
  }
  const TrainOptimizer& o = config.optimizer;
  auto group_options = [&](double weight_decay) {
    auto opts = std::make_unique<torch::optim::AdamWOptions>(o.lr);
    opts->betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(weight_decay);
    return opts;
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, group_options(o.weight_decay));
  groups.emplace_back(no_decay, group_options(0.0));
  torch::optim::AdamW optimizer(groups, torch::optim::AdamWOptions(o.lr));
  if (resume_from) {
    const fs::path file = *resume_from / kOptimizerFile;
    load_optimizer_state(optimizer, read_file(file), device, file.string());
  }
  std::vector<at::Tensor> parameters = decay;
  parameters.insert(parameters.end(), no_decay.begin(), no_decay.end());

  const std::int64_t tokens_per_step = config.batch_size * config.grad_accum * config.seq_len;
  log::info("train: {} parameters ({} layers, d {}, {} heads, ffn {}), vocab {}, {} steps x {} tokens = {} tokens, {} on {}",
            parameter_count, model_config.num_layers, model_config.hidden_size, model_config.num_heads, model_config.intermediate_size,
            model_config.vocab_size, config.steps, tokens_per_step, config.steps * tokens_per_step, config.precision, device.str());

  auto write_training_json = [&] {
    json j = to_json(result);
    j["config"] = to_json(config);
    j["parameters"] = parameter_count;
    j["corpus_tokens"] = stream.tokens.size();
    write_file_atomically(output / "training.json", [&](std::ostream& out) { out << j.dump(2) << "\n"; });
    write_curves(output, result, model_config.num_layers);
  };

  // Model files first, then optimizer state, then the trainer state that marks the
  // checkpoint complete; older checkpoints keep their model files and lose the rest.
  auto save_checkpoint = [&](std::int64_t step, bool run_probe) {
    const fs::path folder = step_folder(output, step);
    save_hf_model(*model, folder);
    save_tokenizer(config, folder);
    const std::string optimizer_state = optimizer_state_bytes(optimizer);
    write_file_atomically(folder / kOptimizerFile, [&](std::ostream& out) { out << optimizer_state; });
    const json state = {{"step", step}, {"config", to_json(config)}, {"corpus_tokens", stream.tokens.size()}};
    write_file_atomically(folder / kStateFile, [&](std::ostream& out) { out << state.dump(2) << "\n"; });
    for (const auto& entry : fs::directory_iterator(output / "checkpoints")) {
      if (entry.path() == folder) continue;
      fs::remove(entry.path() / kOptimizerFile);
      fs::remove(entry.path() / kStateFile);
    }
    if (run_probe) {
      EmergenceProbe p = probe_emergence(folder, config.probe, folder / "inspect");
      p.step = step;
      p.tokens = step * tokens_per_step;
      write_file_atomically(folder / "probe.json", [&](std::ostream& out) { out << to_json(p).dump(2) << "\n"; });
      std::string attention, ratio;
      for (std::size_t l = 0; l < p.attention_on_first.size(); ++l) {
        attention += fmt::format(" {:.3f}", p.attention_on_first[l]);
        ratio += fmt::format(" {:.1f}", p.residual_first_ratio[l]);
      }
      log::info("probe step {}: attention on position 0 per layer [{} ], position-0 max/median [{} ], ppl float {:.3f} {} {:.3f}", step,
                attention, ratio, p.float_ppl, config.probe.quant, p.quant_ppl);
      result.probes.push_back(std::move(p));
    }
    write_training_json();
  };

  InterruptGuard interrupt_guard;
  Progress progress("train", config.steps, "steps");
  progress.advance(start_step);
  auto window_start = std::chrono::steady_clock::now();
  std::int64_t window_tokens = 0;
  const std::int64_t end_step = options.stop_at_step > 0 ? std::min(options.stop_at_step, config.steps) : config.steps;
  if (end_step <= start_step)
    throw_error(ErrorKind::kInvalidArgument, "stop at step {} is not after the checkpoint's step {}", end_step, start_step);
  for (std::int64_t step = start_step; step < end_step; ++step) {
    if (interrupt_requested()) {
      save_checkpoint(step, false);
      throw_error(ErrorKind::kInterrupted, "training stopped at step {}; checkpoint saved in {} (resume from it)", step,
                  step_folder(output, step).string());
    }
    const double lr = learning_rate_at(o, step, config.steps);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    optimizer.zero_grad();
    double step_loss = 0;
    for (std::int64_t micro = 0; micro < config.grad_accum; ++micro) {
      const at::Tensor ids = sample_batch(stream, bos, config, step, micro).to(device);
      at::Tensor loss;
      {
        BFloat16Autocast autocast(device.type(), bf16);
        const at::Tensor logits = model->forward(ids).logits;
        const std::int64_t vocab = logits.size(-1);
        loss = at::cross_entropy_loss(logits.slice(1, 0, -1).reshape({-1, vocab}).to(at::kFloat), ids.slice(1, 1).reshape({-1}));
      }
      const double value = loss.item<double>();
      if (!std::isfinite(value))
        throw_error(ErrorKind::kNumerical, "training loss is {} at step {} (micro-batch {}); the last checkpoint in {} is intact", value,
                    step, micro, (output / "checkpoints").string());
      step_loss += value / static_cast<double>(config.grad_accum);
      (loss / static_cast<double>(config.grad_accum)).backward();
    }
    const double grad_norm = o.grad_clip > 0 ? torch::nn::utils::clip_grad_norm_(parameters, o.grad_clip)
                                             : torch::nn::utils::clip_grad_norm_(parameters, std::numeric_limits<double>::infinity());
    if (!std::isfinite(grad_norm))
      throw_error(ErrorKind::kNumerical, "gradient norm is {} at step {}; the last checkpoint in {} is intact", grad_norm, step,
                  (output / "checkpoints").string());
    optimizer.step();
    window_tokens += tokens_per_step;
    progress.advance();
    const std::int64_t done = step + 1;
    if (done % config.log_every == 0 || done == config.steps) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
      const double rate = static_cast<double>(window_tokens) / std::max(seconds, 1e-9);
      result.log.push_back({done, step_loss, lr, grad_norm, rate});
      progress.set_status(fmt::format("loss {:.4f} lr {:.2e} |g| {:.2f} {:.0f} tok/s", step_loss, lr, grad_norm, rate));
      window_start = std::chrono::steady_clock::now();
      window_tokens = 0;
    }
    if (done % config.checkpoint_every == 0 || done == end_step) {
      progress.set_status(fmt::format("loss {:.4f}, checkpoint and probe at step {}", step_loss, done));
      save_checkpoint(done, true);
      window_start = std::chrono::steady_clock::now();
      window_tokens = 0;
    }
  }
  progress.finish();
  result.steps = end_step;
  result.tokens = end_step * tokens_per_step;
  if (end_step < config.steps) {
    log::info("train: stopped at step {} of {} as asked; resuming continues from here", end_step, config.steps);
    return result;
  }

  // The final model at the top of the output folder, as every other command expects.
  const fs::path last = step_folder(output, config.steps);
  for (const char* file : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}) {
    if (!fs::exists(last / file)) continue;
    // Copied beside and renamed, so a stopped copy never leaves half a file under the real name.
    const fs::path partial = output / (std::string(file) + ".partial");
    fs::copy_file(last / file, partial, fs::copy_options::overwrite_existing);
    fs::rename(partial, output / file);
  }
  write_training_json();
  return result;
}

}  // namespace cushioncache
