#include "cushioncache/model/causal_lm.h"

#include <algorithm>
#include <limits>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"
#include "cushioncache/model/block_streamer.h"
#include "cushioncache/model/family.h"

namespace cushioncache {

SiteProducer SiteProducer::from_norm(int layer, Site site, std::vector<Linear*> consumers, at::Tensor* gain, at::Tensor* bias,
                                     at::Tensor channels) {
  SiteProducer p;
  p.layer = layer;
  p.site = site;
  p.consumers = std::move(consumers);
  p.norm_weight = gain;
  p.norm_bias = bias;
  p.producer_row = std::move(channels);
  return p;
}

SiteProducer SiteProducer::from_linear(int layer, Site site, std::vector<Linear*> consumers, Linear* producer, at::Tensor rows) {
  SiteProducer p;
  p.layer = layer;
  p.site = site;
  p.consumers = std::move(consumers);
  p.producer = producer;
  p.producer_row = std::move(rows);
  return p;
}

HookHandle& HookHandle::operator=(HookHandle&& other) noexcept {
  if (this != &other) {
    remove();
    model_ = std::exchange(other.model_, nullptr);
    model_alive_ = std::move(other.model_alive_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

void HookHandle::remove() {
  if (model_ != nullptr && !model_alive_.expired()) model_->remove_hook(id_);
  model_ = nullptr;
}

HookHandle CausalLM::add_hook(std::shared_ptr<ActivationHook> hook) {
  if (!hook) throw_error(ErrorKind::kInvalidArgument, "add_hook: null hook");
  const std::uint64_t id = next_hook_id_++;
  hooks_.emplace_back(id, std::move(hook));
  return HookHandle(this, alive_, id);
}

HookHandle CausalLM::add_hook(Site site, SiteFunction function) {
  if (!function) throw_error(ErrorKind::kInvalidArgument, "add_hook: empty function for site {}", site_name(site));
  struct OneSite : ActivationHook {
    Site site;
    SiteFunction function;
    OneSite(Site s, SiteFunction f) : site(s), function(std::move(f)) {}
    at::Tensor on_activation(const SiteContext& context, const at::Tensor& x) override {
      return context.site == site ? function(context, x) : x;
    }
  };
  return add_hook(std::make_shared<OneSite>(site, std::move(function)));
}

std::int64_t CausalLM::block_working_bytes(std::int64_t tokens, std::int64_t keys, std::int64_t element_size) const {
  const ModelConfig& c = config_;
  const std::int64_t kv = c.num_kv_heads * c.head_dim;
  const std::int64_t elements = tokens * (4 * c.hidden_size + c.num_heads * c.head_dim) + 2 * keys * kv + 2 * c.num_heads * tokens * keys +
                                tokens * mlp_peak_elements_per_token();
  const std::int64_t score_extra = element_size < 4 ? (4 - element_size) * c.num_heads * tokens * keys : 0;  // float32 scores
  // Three times the tensors counted: ATen's ops hold temporaries of their own, and freed
  // blocks are not always reusable at once. bench_search measured the resident memory of
  // a 16-candidate batch on stories260K rising by 1.0x to 2.2x the count over several
  // runs (docs/reliability.md); a bound must hold on the bad runs too.
  return 3 * (elements * element_size + score_extra);
}

void CausalLM::remove_hook(std::uint64_t id) {
  hooks_.erase(std::remove_if(hooks_.begin(), hooks_.end(), [id](const auto& h) { return h.first == id; }), hooks_.end());
}

at::Tensor CausalLM::at_site(int layer, Site site, at::Tensor x, const ForwardState& state) const {
  if (hooks_.empty()) return x;
  if (site == Site::kBlockInput && layer == state.entered_block) return x;  // enter_block() reported it
  SiteContext context{layer,           site,           state.text_mask,   state.prefix_tokens,
                      state.all_text, state.input_ids, state.past_tokens, state.past_length};
  for (const auto& [id, hook] : hooks_) {
    at::Tensor replaced = hook->on_activation(context, x);
    if (!replaced.defined() || replaced.sizes() != x.sizes())
      throw_error(ErrorKind::kInvalidArgument, "a hook at layer {} site {} returned shape [{}] for an activation of shape [{}]",
                  layer, site_name(site), replaced.defined() ? fmt::format("{}", fmt::join(replaced.sizes(), ", ")) : "undefined",
                  fmt::join(x.sizes(), ", "));
    x = std::move(replaced);
  }
  return x;
}

namespace {

// kInvalidArgument when a position reaches past a learned position table. Without
// padding the last position is S_past + T - 1; only a longer input pays for the exact
// maximum (a device sync).
void check_positions_fit(const ForwardState& state, std::int64_t max_positions) {
  if (state.past_length + state.length <= max_positions) return;
  const std::int64_t last = state.positions.max().item<std::int64_t>();
  if (last >= max_positions)
    throw_error(ErrorKind::kInvalidArgument, "position {} (prefix and text together) is beyond the model's max_position_embeddings {}",
                last, max_positions);
}

}  // namespace

ForwardState CausalLM::prepare(const at::Tensor& input_ids, const ForwardOptions& options) const {
  if (!input_ids.defined() || input_ids.dim() != 2)
    throw_error(ErrorKind::kInvalidArgument, "input_ids must be [batch, length], got {}",
                input_ids.defined() ? fmt::format("[{}]", fmt::join(input_ids.sizes(), ", ")) : "undefined");
  if (!at::isIntegralType(input_ids.scalar_type(), /*includeBool=*/false))
    throw_error(ErrorKind::kInvalidArgument, "input_ids must be integers, got {}", c10::toString(input_ids.scalar_type()));
  ForwardState s;
  s.batch = input_ids.size(0);
  s.length = input_ids.size(1);
  if (s.batch == 0 || s.length == 0) throw_error(ErrorKind::kInvalidArgument, "input_ids is empty ([{}, {}])", s.batch, s.length);
  auto [min_tensor, max_tensor] = at::aminmax(input_ids);
  const std::int64_t min_id = min_tensor.item<std::int64_t>(), max_id = max_tensor.item<std::int64_t>();
  if (min_id < 0 || max_id >= config_.vocab_size)
    throw_error(ErrorKind::kInvalidArgument, "token id {} is outside the vocabulary [0, {})", min_id < 0 ? min_id : max_id,
                config_.vocab_size);

  const c10::Device dev = device();
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(dev);
  s.past = options.past != nullptr && !options.past->empty() ? options.past : nullptr;
  at::Tensor past_valid;  // [B, S_past]
  if (s.past != nullptr) {
    s.past->check_compatible(config_);
    if (s.past->value_basis != value_basis_)
      throw_error(ErrorKind::kMismatch, "the KV cache's values were computed before scales were folded into v_proj (SmoothQuant at "
                  "o_proj's input): they no longer fit this model; use the prefix the quantized model adapted (QuantizedModel::prefix)");
    if (s.past->batch_size() != 1 && s.past->batch_size() != s.batch)
      throw_error(ErrorKind::kMismatch, "KV cache batch {} fits neither batch 1 nor the input batch {}", s.past->batch_size(), s.batch);
    if (s.past->layers.front().key.device() != dev)
      throw_error(ErrorKind::kMismatch, "KV cache is on {}, the model on {}", s.past->layers.front().key.device().str(), dev.str());
    s.past_length = s.past->length();
    if (s.past->valid.defined()) past_valid = s.past->valid.to(dev, at::kBool).expand({s.batch, s.past_length});
  }
  if (options.prefix_tokens < 0 || options.prefix_tokens > s.length)
    throw_error(ErrorKind::kInvalidArgument, "prefix_tokens {} is outside [0, {}]", options.prefix_tokens, s.length);
  s.prefix_tokens = options.prefix_tokens;

  at::Tensor new_valid;  // [B, T]
  if (options.attention_mask.defined()) {
    if (options.attention_mask.sizes() != input_ids.sizes())
      throw_error(ErrorKind::kInvalidArgument, "attention_mask has shape [{}], input_ids [{}]",
                  fmt::join(options.attention_mask.sizes(), ", "), fmt::join(input_ids.sizes(), ", "));
    new_valid = options.attention_mask.to(dev).ne(0);
  }
  const std::int64_t total = s.past_length + s.length;
  if (new_valid.defined() || past_valid.defined()) {
    if (!new_valid.defined()) new_valid = at::ones({s.batch, s.length}, at::TensorOptions().dtype(at::kBool).device(dev));
    if (!past_valid.defined()) past_valid = at::ones({s.batch, s.past_length}, at::TensorOptions().dtype(at::kBool).device(dev));
    s.key_valid = at::cat({past_valid, new_valid}, 1);
    // Padding takes no position: each row counts only its real tokens (left padding works).
    at::Tensor past_count = past_valid.sum(1, /*keepdim=*/true);
    s.positions = (past_count + new_valid.to(at::kLong).cumsum(1) - 1).clamp_min(0);
    s.text_mask = new_valid.clone();
  } else {
    s.positions = at::arange(s.past_length, total, long_opts).unsqueeze(0).expand({s.batch, s.length});
    s.text_mask = at::ones({s.batch, s.length}, at::TensorOptions().dtype(at::kBool).device(dev));
  }
  if (s.prefix_tokens > 0) s.text_mask.narrow(1, 0, s.prefix_tokens).fill_(false);
  s.all_text = !options.attention_mask.defined() && s.prefix_tokens == 0;

  // Query t sits at cache index S_past + t and may see keys at indices up to its own.
  at::Tensor query_index = at::arange(s.past_length, total, long_opts).unsqueeze(1);  // [T, 1]
  at::Tensor key_index = at::arange(0, total, long_opts).unsqueeze(0);               // [1, S]
  at::Tensor allowed = key_index.le(query_index);
  if (config_.sliding_window) allowed = allowed & (query_index - key_index).lt(*config_.sliding_window);
  allowed = allowed.view({1, 1, s.length, total});
  if (s.key_valid.defined()) allowed = allowed & s.key_valid.view({s.batch, 1, 1, total});
  // Built once per forward, added in place to every layer's scores. The lowest finite
  // float (not -inf) keeps a fully masked row (a padding query) from producing NaN.
  s.attn_bias = at::zeros(allowed.sizes(), at::TensorOptions().dtype(at::kFloat).device(dev))
                    .masked_fill_(allowed.logical_not(), std::numeric_limits<float>::lowest());

  s.input_ids = input_ids.to(dev, at::kLong);
  if (s.past != nullptr && s.past->tokens.defined()) s.past_tokens = s.past->tokens.to(dev, at::kLong);
  s.collect_cache = options.return_cache;
  if (s.collect_cache) {
    s.cache.layers.resize(static_cast<std::size_t>(config_.num_layers));
    s.cache.value_basis = value_basis_;
    // The new cache remembers its tokens when the past's are known (or there is no past).
    if (s.past == nullptr) s.cache.tokens = s.input_ids;
    else if (s.past_tokens.defined()) s.cache.tokens = at::cat({s.past_tokens.expand({s.batch, s.past_length}), s.input_ids}, 1);
  }
  if (config_.positions() == PositionKind::kLearned) check_positions_fit(s, config_.max_position_embeddings);
  prepare_positions(s);
  return s;
}

ForwardState CausalLM::select_rows(const ForwardState& state, const at::Tensor& rows) const {
  if (state.collect_cache) throw_error(ErrorKind::kInvalidArgument, "select_rows cannot follow a forward that collects its cache");
  if (state.past != nullptr && state.past->batch_size() != 1)
    throw_error(ErrorKind::kInvalidArgument, "select_rows needs a past of batch 1, not {}", state.past->batch_size());
  const at::Tensor index = rows.to(state.positions.device(), at::kLong);
  auto pick = [&](const at::Tensor& t) { return !t.defined() || t.size(0) == 1 ? t : t.index_select(0, index); };
  ForwardState s = state;
  s.batch = index.size(0);
  s.positions = state.positions.index_select(0, index);
  s.attn_bias = pick(state.attn_bias);
  s.key_valid = pick(state.key_valid);
  s.text_mask = state.text_mask.index_select(0, index);
  s.rope_cos = pick(state.rope_cos);
  s.rope_sin = pick(state.rope_sin);
  s.head_bias = pick(state.head_bias);
  s.input_ids = state.input_ids.index_select(0, index);
  s.past_tokens = pick(state.past_tokens);
  return s;
}

at::Tensor CausalLM::enter_block(int layer, const at::Tensor& hidden, ForwardState& state) const {
  if (layer < 0 || layer >= config_.num_layers)
    throw_error(ErrorKind::kInvalidArgument, "enter_block: block {} is outside [0, {})", layer, config_.num_layers);
  state.entered_block = -1;
  at::Tensor input = at_site(layer, Site::kBlockInput, hidden, state);
  state.entered_block = layer;
  return input;
}

at::Tensor CausalLM::run_block(int layer, const at::Tensor& hidden, ForwardState& state) const {
  // The block reports its input site unless enter_block(layer) did; either way, once.
  struct Leave {
    ForwardState& state;
    ~Leave() { state.entered_block = -1; }
  } leave{state};
  if (streamer_ == nullptr || !streamer_->streams(layer)) return compute_block(layer, hidden, state);
  AcquiredBlock on_device(*streamer_, layer);
  at::Tensor out = compute_block(layer, hidden, state);
  // After this block's work is queued, so that on a GPU the next block's copy overlaps
  // it. Only forward: a prefetch across forwards could copy weights that are changed in
  // place in between (quantization, SmoothQuant).
  const int next = streamer_->next_streamed(layer);
  if (next > layer) streamer_->prefetch(next);
  return out;
}

void CausalLM::stream_blocks(c10::Device device, int resident_blocks) {
  const ModelFamily& family = model_family(config_.model_type);
  if (resident_blocks < 0 || resident_blocks > config_.num_layers)
    throw_error(ErrorKind::kInvalidArgument, "block streaming: {} resident blocks asked for, the model has {}", resident_blocks,
                config_.num_layers);
  std::vector<std::vector<at::Tensor*>> slots(static_cast<std::size_t>(config_.num_layers));
  for (auto& [name, tensor] : named_weights()) {
    const int layer = block_of(family, name);
    if (layer < 0) continue;
    if (layer < resident_blocks) {
      *tensor = tensor->to(device);  // a no-op for weights the loader put there
      continue;
    }
    if (!tensor->device().is_cpu())
      throw_error(ErrorKind::kUnsupported, "block streaming: weight '{}' is on {}, not in host memory (load with stream_blocks)", name,
                  tensor->device().str());
    slots.at(static_cast<std::size_t>(layer)).push_back(tensor);
  }
  if (resident_blocks == config_.num_layers) return;  // everything fits: nothing streams
  streamer_ = std::make_shared<BlockStreamer>(std::move(slots), device);
  log::info("block streaming to {}: {} of {} blocks streamed from host memory ({:.1f} MB each at most, two on the device at a time)",
            device.str(), config_.num_layers - resident_blocks, config_.num_layers, static_cast<double>(streamer_->largest_block_bytes()) / 1e6);
}

int CausalLM::streamed_blocks() const {
  if (streamer_ == nullptr) return 0;
  int count = 0;
  for (int l = 0; l < config_.num_layers; ++l) count += streamer_->streams(l) ? 1 : 0;
  return count;
}

at::Tensor CausalLM::attend(int layer, at::Tensor q, at::Tensor k, at::Tensor v, ForwardState& state, double scale) const {
  const std::int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), Hkv = k.size(1);
  const std::int64_t G = H / Hkv;
  q = at_site(layer, Site::kQuery, q, state);
  k = at_site(layer, Site::kKey, k, state);
  v = at_site(layer, Site::kValue, v, state);
  if (state.past != nullptr) {
    const LayerKV& past = state.past->layers[static_cast<std::size_t>(layer)];
    const std::int64_t P = past.key.size(2);
    k = at::cat({past.key.to(k.scalar_type()).expand({B, Hkv, P, D}), k}, 2);
    v = at::cat({past.value.to(v.scalar_type()).expand({B, Hkv, P, D}), v}, 2);
  }
  if (state.collect_cache) state.cache.layers[static_cast<std::size_t>(layer)] = {k, v};
  const std::int64_t S = k.size(2);

  // Grouped-query attention without copying K/V per query head: the G query heads that
  // share a KV head are stacked along the sequence axis of one matmul. The scale goes on
  // q (T rows) rather than on the scores (T x S).
  at::Tensor qg = (q * scale).reshape({B, Hkv, G * T, D});
  // In place: no backward formula needs the matmul's output.
  at::Tensor scores = at::matmul(qg, k.transpose(-1, -2)).view({B, Hkv, G, T, S}).to(at::kFloat);
  scores.add_(state.attn_bias.unsqueeze(1));
  if (state.head_bias.defined()) scores.add_(state.head_bias.view({state.head_bias.size(0), Hkv, G, 1, S}));
  at::Tensor probs = at::softmax(scores, -1).to(q.scalar_type());
  probs = at_site(layer, Site::kAttnProbs, probs.view({B, H, T, S}), state);
  at::Tensor out = at::matmul(probs.view({B, Hkv, G * T, S}), v);  // [B, Hkv, G*T, D]
  out = out.view({B, H, T, D}).transpose(1, 2).reshape({B, T, H * D});
  return at_site(layer, Site::kOProjInput, out, state);
}

ForwardOutput CausalLM::forward(const at::Tensor& input_ids, const ForwardOptions& options) {
  ForwardState state = prepare(input_ids, options);
  at::Tensor hidden = embed(input_ids.to(device(), at::kLong), state);
  for (int l = 0; l < config_.num_layers; ++l) hidden = run_block(l, hidden, state);
  ForwardOutput out;
  out.logits = head(hidden, options.last_logits_only);
  if (options.return_cache) {
    out.cache = std::move(state.cache);
    out.cache.valid = state.key_valid;
  }
  return out;
}

KVCache compute_kv_cache(CausalLM& model, const std::vector<std::int64_t>& tokens) {
  if (tokens.empty()) throw_error(ErrorKind::kInvalidArgument, "a KV cache needs at least one token");
  c10::NoGradGuard no_grad;
  ForwardOptions options;
  options.return_cache = true;
  options.last_logits_only = true;
  return model.forward(at::tensor(tokens, at::kLong).unsqueeze(0), options).cache;
}

}  // namespace cushioncache
