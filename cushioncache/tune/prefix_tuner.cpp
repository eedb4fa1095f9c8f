#include "cushioncache/tune/prefix_tuner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/optim/adam.h>
#include <fmt/ranges.h>  // fmt::join: in <fmt/format.h> before fmt 11, here since (PyTorch 2.x ships fmt 12)

#include "cushioncache/core/error.h"
#include "cushioncache/core/interrupt.h"
#include "cushioncache/core/log.h"
#include "cushioncache/core/optimizer_state.h"
#include "cushioncache/core/progress.h"
#include "cushioncache/io/safetensors.h"

namespace cushioncache {
namespace {

std::vector<at::Tensor*> parameters(KVCache& prefix) {
  std::vector<at::Tensor*> p;
  for (auto& layer : prefix.layers) {
    p.push_back(&layer.key);
    p.push_back(&layer.value);
  }
  return p;
}

nlohmann::json log_json(const std::vector<TuningLogEntry>& log) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& e : log)
    j.push_back({{"step", e.step}, {"epoch", e.epoch}, {"loss", e.loss}, {"cross_entropy", e.cross_entropy},
                 {"quant_error", e.quant_error}, {"grad_norm", e.grad_norm}});
  return j;
}

}  // namespace

nlohmann::json to_json(const TuningOptions& o) {
  nlohmann::json j = {{"lambda", o.lambda},         {"lr", o.lr},       {"beta1", o.beta1},         {"beta2", o.beta2},
                      {"eps", o.eps},               {"epochs", o.epochs}, {"batch_size", o.batch_size}, {"grad_clip", o.grad_clip},
                      {"quant_error", to_json(o.quant_error)}};
  j.update(to_json(o.windows));
  return j;
}

void check_tuning_options(const TuningOptions& o) {
  if (o.epochs < 1 || o.batch_size < 1 || o.windows.samples < 1 || o.windows.seq_len < 2 || !(o.lr > 0) || o.lambda < 0)
    throw_error(ErrorKind::kInvalidConfig, "tuning needs epochs, batch_size, samples >= 1, seq_len >= 2, lr > 0 and lambda >= 0");
}

QuantAwarePrefixTuner::QuantAwarePrefixTuner(CausalLM& model, const Tokenizer& tokenizer, TuningOptions options, RunContext context)
    : model_(model), tokenizer_(tokenizer), options_(std::move(options)), context_(std::move(context)) {
  check_tuning_options(options_);
  if (context_.resume && context_.state_file.empty()) throw_error(ErrorKind::kInvalidArgument, "resuming the tuning needs a checkpoint file");
}

const std::vector<std::vector<std::int64_t>>& QuantAwarePrefixTuner::windows_behind(std::int64_t prefix_tokens) {
  if (prefix_tokens != windows_prefix_tokens_) {
    // The prefix takes the place of BOS: the windows carry none.
    const std::int64_t room = room_after_prefix(model_.config().max_position_embeddings, prefix_tokens);
    windows_ = sample_text_windows(tokenizer_, options_.windows, room, BosPolicy::kNo).sequences;
    windows_prefix_tokens_ = prefix_tokens;
  }
  return windows_;
}

QuantAwarePrefixTuner::Batch QuantAwarePrefixTuner::loss_on(const KVCache& prefix, const std::vector<std::size_t>& rows, bool with_graph) {
  std::vector<at::Tensor> seqs;
  for (auto r : rows) seqs.push_back(at::tensor(windows_[r], at::kLong));
  const at::Tensor ids = at::stack(seqs).to(model_.device());
  auto objective = std::make_shared<ObjectiveHook>(options_.quant_error, /*keep_graph=*/with_graph);
  HookHandle handle = model_.add_hook(objective);
  ForwardOptions fo;
  fo.past = &prefix;
  const at::Tensor logits = model_.forward(ids, fo).logits;  // [B, T, V] float32
  const std::int64_t V = logits.size(-1), T = ids.size(1);
  const at::Tensor ce = at::cross_entropy_loss(logits.narrow(1, 0, T - 1).reshape({-1, V}), ids.narrow(1, 1, T - 1).reshape({-1}));
  const at::Tensor lq = objective->take().to(at::kFloat).mean() / static_cast<double>(T);  // per token
  const at::Tensor loss = ce + options_.lambda * lq;
  return {loss.item<double>(), ce.item<double>(), lq.item<double>(), with_graph ? loss : at::Tensor()};
}

std::vector<std::size_t> QuantAwarePrefixTuner::my_rows(const std::vector<std::size_t>& rows) const {
  if (context_.group == nullptr) return rows;
  std::vector<std::size_t> mine;
  const auto world = static_cast<std::size_t>(context_.group->world_size());
  for (std::size_t i = static_cast<std::size_t>(context_.group->rank()); i < rows.size(); i += world) mine.push_back(rows[i]);
  return mine;
}

void QuantAwarePrefixTuner::sum_over_ranks(at::Tensor& values, const std::string& what) const {
  if (!context_.alone()) context_.group->all_reduce(values, ReduceOp::kSum, what);
}

double QuantAwarePrefixTuner::evaluate(const KVCache& prefix) {
  c10::NoGradGuard no_grad;
  windows_behind(prefix.length());
  double total = 0;
  for (std::size_t first = 0; first < windows_.size(); first += static_cast<std::size_t>(options_.batch_size)) {
    std::vector<std::size_t> rows;
    for (std::size_t i = first; i < std::min(windows_.size(), first + static_cast<std::size_t>(options_.batch_size)); ++i) rows.push_back(i);
    const std::vector<std::size_t> mine = my_rows(rows);
    if (!mine.empty()) total += loss_on(prefix, mine, false).loss * static_cast<double>(mine.size());
  }
  at::Tensor sum = at::tensor({total}, at::kDouble);
  sum_over_ranks(sum, "summing the tuning loss");
  return sum.item<double>() / static_cast<double>(windows_.size());
}

TuningResult QuantAwarePrefixTuner::tune(const KVCache& initial) {
  if (initial.empty() || initial.batch_size() != 1) throw_error(ErrorKind::kInvalidArgument, "tuning needs a prefix KV of batch 1");
  initial.check_compatible(model_.config());
  windows_behind(initial.length());
  const auto start = std::chrono::steady_clock::now();
  InterruptGuard interrupts;
  TuningResult result;
  // The prefix's keys and values are the parameters: float32 leaves that Adam updates in place.
  KVCache prefix = initial.detached();
  std::vector<at::Tensor> params;
  for (at::Tensor* p : parameters(prefix)) {
    *p = p->to(at::kFloat).clone().requires_grad_(true);
    params.push_back(*p);
  }
  torch::optim::Adam adam(params, torch::optim::AdamOptions(options_.lr).betas({options_.beta1, options_.beta2}).eps(options_.eps));
  std::int64_t step = 0;
  const std::int64_t steps_per_epoch = (static_cast<std::int64_t>(windows_.size()) + options_.batch_size - 1) / options_.batch_size;
  const std::int64_t total_steps = steps_per_epoch * options_.epochs;

  const std::string& checkpoint = context_.state_file;
  if (context_.resume && std::filesystem::exists(checkpoint)) {
    const SafetensorsFile ckpt = SafetensorsFile::open(checkpoint);
    with_context(checkpoint, [&] {
      auto metadata = [&](const std::string& key) -> const std::string& { return ckpt.required_metadata(key, "tuning checkpoint"); };
      if (metadata("options") != to_json(options_).dump())
        throw_error(ErrorKind::kMismatch, "the checkpoint was made with other tuning settings");
      c10::NoGradGuard no_grad;
      for (std::size_t i = 0; i < params.size(); ++i) {
        const std::string name = fmt::format("param.{}", i);
        const at::Tensor t = ckpt.load(name);
        if (!t.sizes().equals(params[i].sizes()) || t.scalar_type() != params[i].scalar_type())
          throw_error(ErrorKind::kCorruptInput, "tensor '{}' has shape [{}] ({}), the prefix needs [{}] ({})", name, fmt::join(t.sizes(), ", "),
                      c10::toString(t.scalar_type()), fmt::join(params[i].sizes(), ", "), c10::toString(params[i].scalar_type()));
        params[i].copy_(t);
      }
      if (!ckpt.contains("optimizer"))
        throw_error(ErrorKind::kMismatch, "the checkpoint holds no optimizer state (written by an older version, with its own Adam): "
                    "tune afresh, without resuming");
      const at::Tensor state = ckpt.load("optimizer").contiguous();
      load_optimizer_state(adam, std::string(static_cast<const char*>(state.data_ptr()), static_cast<std::size_t>(state.numel())),
                           params.front().device(), checkpoint);
      try {
        step = std::stoll(metadata("step"));
        const auto log = nlohmann::json::parse(metadata("log"));
        for (const auto& e : log)
          result.log.push_back({e.at("step"), e.at("epoch"), e.at("loss"), e.at("cross_entropy"), e.at("quant_error"), e.at("grad_norm")});
        result.loss_before = std::stod(metadata("loss_before"));
      } catch (const std::logic_error& e) {  // std::stoll/stod and JSON errors: a damaged metadata field
        throw_error(ErrorKind::kCorruptInput, "damaged checkpoint metadata: {}", e.what());
      }
      if (step < 0 || step > total_steps)
        throw_error(ErrorKind::kCorruptInput, "checkpoint step {} is outside this run's {} steps", step, total_steps);
    });
    log::info("resuming prefix tuning at step {} of {}", step, total_steps);
  } else {
    result.loss_before = evaluate(prefix);
  }

  auto save = [&] {
    if (!context_.writes_state()) return;
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (std::size_t i = 0; i < params.size(); ++i) tensors.emplace_back(fmt::format("param.{}", i), params[i].detach());
    const std::string state = optimizer_state_bytes(adam);
    tensors.emplace_back("optimizer", at::tensor(at::ArrayRef<std::uint8_t>(reinterpret_cast<const std::uint8_t*>(state.data()), state.size()),
                                                 at::kByte));
    write_safetensors(checkpoint, tensors,
                      {{"options", to_json(options_).dump()}, {"step", std::to_string(step)}, {"log", log_json(result.log).dump()},
                       {"loss_before", fmt::format("{:.17g}", result.loss_before)}});
  };

  Progress progress("prefix tuning", total_steps, "step");
  progress.advance(step);
  while (step < total_steps) {
    if (interrupt_requested()) {
      save();
      throw_if_interrupted("prefix tuning");
    }
    const std::int64_t epoch = step / steps_per_epoch, within = step % steps_per_epoch;
    // The order of an epoch depends only on the seed and the epoch: resuming keeps it.
    std::vector<std::size_t> order(windows_.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(options_.windows.seed * 1000003 + static_cast<std::uint64_t>(epoch)));
    std::vector<std::size_t> rows(order.begin() + within * options_.batch_size,
                                  order.begin() + std::min<std::int64_t>((within + 1) * options_.batch_size, static_cast<std::int64_t>(order.size())));

    // Each rank's mean over its rows, weighted by its share of the batch: the gradients
    // summed over the ranks are those of the whole batch's mean.
    const std::vector<std::size_t> mine = my_rows(rows);
    const double share = static_cast<double>(mine.size()) / static_cast<double>(rows.size());
    adam.zero_grad();
    Batch batch{0, 0, 0, at::Tensor()};
    if (!mine.empty()) {
      batch = loss_on(prefix, mine, true);
      if (!std::isfinite(batch.loss)) throw_error(ErrorKind::kNumerical, "prefix tuning: the loss is {} at step {}", batch.loss, step);
      (batch.loss_tensor * share).backward();
    }
    c10::NoGradGuard no_grad;
    // A rank without rows this step (and zero_grad in LibTorch 2, which resets to
    // undefined) leaves no gradient: zeros, so every rank steps the same parameters.
    for (at::Tensor& p : params)
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    if (!context_.alone()) {
      std::vector<at::Tensor> flat;
      for (const at::Tensor& p : params) flat.push_back(p.grad().reshape({-1}));
      at::Tensor all = at::cat(flat).to(at::kCPU);
      sum_over_ranks(all, "summing the prefix gradients");
      std::int64_t offset = 0;
      for (at::Tensor& p : params) {
        p.mutable_grad().copy_(all.narrow(0, offset, p.numel()).view(p.sizes()));
        offset += p.numel();
      }
      at::Tensor losses = at::tensor({batch.loss * share, batch.cross_entropy * share, batch.quant_error * share}, at::kDouble);
      sum_over_ranks(losses, "summing the tuning loss");
      batch.loss = losses[0].item<double>();
      batch.cross_entropy = losses[1].item<double>();
      batch.quant_error = losses[2].item<double>();
    }
    double norm_sq = 0;
    for (const at::Tensor& p : params) norm_sq += p.grad().pow(2).sum().item<double>();
    const double norm = std::sqrt(norm_sq);
    if (options_.grad_clip > 0 && norm > options_.grad_clip)
      for (at::Tensor& p : params) p.mutable_grad().mul_(options_.grad_clip / norm);
    adam.step();
    ++step;
    result.log.push_back({step, epoch, batch.loss, batch.cross_entropy, batch.quant_error, norm});
    log::debug("tuning step {}: loss {:.5f} = ce {:.5f} + {} * lq {:.5f}, |grad| {:.4g}", step, batch.loss, batch.cross_entropy,
               options_.lambda, batch.quant_error, norm);
    progress.set_status(fmt::format("loss {:.4f} (ce {:.4f}, lq {:.4g})", batch.loss, batch.cross_entropy, batch.quant_error));
    progress.advance();
    if (options_.checkpoint_every > 0 && step % options_.checkpoint_every == 0) save();
  }
  progress.finish();
  save();
  for (at::Tensor* p : parameters(prefix)) *p = p->detach();
  result.loss_after = evaluate(prefix);
  result.prefix = std::move(prefix);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace cushioncache
