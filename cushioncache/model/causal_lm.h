// The decoder-only causal LM every part of the library works with. A forward pass takes
// token ids, an optional cached prefix (its KV; text positions then start after it) and
// an optional padding mask. Families (model/llama.h, ...) implement the three stages;
// the stages are public so a caller can run blocks one at a time, e.g. to drop search
// candidates between blocks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "cushioncache/model/config.h"
#include "cushioncache/model/kv_cache.h"
#include "cushioncache/model/linear.h"
#include "cushioncache/model/sites.h"

namespace cushioncache {

struct ForwardOptions {
  const KVCache* past = nullptr;    // prefix KV or decoding cache, positions 0..S-1
  at::Tensor attention_mask;        // [B, T], 1 = token, 0 = padding (left or right); undefined = none
  std::int64_t prefix_tokens = 0;   // leading input tokens that belong to the prefix (not text)
  bool return_cache = false;        // ForwardOutput::cache = past ++ this input's keys/values
  bool last_logits_only = false;    // logits for the last input position only
};

struct ForwardOutput {
  at::Tensor logits;  // [B, T, vocab] float32 ([B, 1, vocab] with last_logits_only)
  KVCache cache;
};

// What every block of one forward pass shares.
struct ForwardState {
  std::int64_t batch = 0;
  std::int64_t length = 0;        // T, input tokens
  std::int64_t past_length = 0;   // S_past
  at::Tensor positions;           // [B, T] int64 absolute positions
  // [B or 1, 1, T, S_past + T] float32: 0 where query t may attend to key s, the lowest
  // float where it may not; added to the attention scores.
  at::Tensor attn_bias;
  at::Tensor key_valid;           // [B, S_past + T] bool, or undefined when all keys are real
  at::Tensor text_mask;           // [B, T] bool (see SiteContext)
  bool all_text = true;           // text_mask is all true
  std::int64_t prefix_tokens = 0;
  const KVCache* past = nullptr;
  bool collect_cache = false;
  KVCache cache;                  // filled block by block when collect_cache
  at::Tensor rope_cos, rope_sin;  // [B, 1, T, head_dim], for families with rotary positions
  // [B or 1, heads, 1, S_past + T] float32, added to every layer's scores on top of
  // attn_bias (ALiBi); undefined for other families.
  at::Tensor head_bias;
  at::Tensor input_ids;           // [B, T] on the model's device
  at::Tensor past_tokens;         // [B or 1, S_past] or undefined (see SiteContext)
  int entered_block = -1;         // the block whose input enter_block() has reported, until it runs
};

// A linear layer with its Hugging Face name and the site that feeds it.
struct LinearRef {
  std::string name;  // "model.layers.3.self_attn.q_proj"
  int layer;
  Site input_site;
  Linear* linear;
};

// Where the activations at a linear-input site come from, so that a per-channel scale s
// can move between them (SmoothQuant): dividing the producer's output channel by s and
// multiplying the consumers' weight columns by s leaves the function unchanged.
struct SiteProducer {
  int layer = 0;
  Site site = Site::kAttnInput;
  std::vector<Linear*> consumers;      // the linears reading the site
  at::Tensor* norm_weight = nullptr;   // producer is a norm: its gain (and bias) per channel
  at::Tensor* norm_bias = nullptr;
  Linear* producer = nullptr;          // producer is a linear: its output rows
  at::Tensor producer_row;             // [channels] int64: the producer row behind each site channel

  // A norm's output (gain, and bias when given) feeds the site channel by channel.
  static SiteProducer from_norm(int layer, Site site, std::vector<Linear*> consumers, at::Tensor* gain, at::Tensor* bias,
                                at::Tensor channels);
  // Site channel c comes from row rows[c] of a linear's output (through an elementwise op
  // that commutes with positive scales).
  static SiteProducer from_linear(int layer, Site site, std::vector<Linear*> consumers, Linear* producer, at::Tensor rows);
};

class CausalLM;
class BlockStreamer;  // model/block_streamer.h

// Removes its hook from the model when destroyed (or on remove()). A handle may outlive
// its model (a handle declared before the model it is for is destroyed after it): then
// there is nothing left to remove.
class HookHandle {
 public:
  HookHandle() = default;
  HookHandle(CausalLM* model, std::weak_ptr<const void> model_alive, std::uint64_t id)
      : model_(model), model_alive_(std::move(model_alive)), id_(id) {}
  HookHandle(HookHandle&& other) noexcept { *this = std::move(other); }
  HookHandle& operator=(HookHandle&& other) noexcept;
  HookHandle(const HookHandle&) = delete;
  HookHandle& operator=(const HookHandle&) = delete;
  ~HookHandle() { remove(); }
  void remove();
  // Leaves the hook on the model for the model's lifetime.
  void release() { model_ = nullptr; }

 private:
  CausalLM* model_ = nullptr;
  std::weak_ptr<const void> model_alive_;  // expires when the model is destroyed
  std::uint64_t id_ = 0;
};

class CausalLM {
 public:
  explicit CausalLM(ModelConfig config) : config_(std::move(config)) {}
  virtual ~CausalLM() = default;
  CausalLM(const CausalLM&) = delete;
  CausalLM& operator=(const CausalLM&) = delete;

  const ModelConfig& config() const { return config_; }
  virtual c10::Device device() const = 0;
  virtual c10::ScalarType dtype() const = 0;

  // prepare -> embed -> every block -> head, in one call.
  ForwardOutput forward(const at::Tensor& input_ids, const ForwardOptions& options = {});

  // The stages. prepare() validates the inputs (ids in range, shapes of the mask and
  // cache) and builds positions and masks.
  ForwardState prepare(const at::Tensor& input_ids, const ForwardOptions& options) const;
  // The same state for a subset of the batch rows (e.g. the search candidates that survive
  // pruning). Needs a past of batch 1 (or none) and no cache collection.
  ForwardState select_rows(const ForwardState& state, const at::Tensor& rows) const;
  virtual at::Tensor embed(const at::Tensor& input_ids, const ForwardState& state) const = 0;
  // Block `layer`; with block streaming, its weights are copied to the device for it.
  at::Tensor run_block(int layer, const at::Tensor& hidden, ForwardState& state) const;
  // The input site of block `layer`, ahead of the block: passes `hidden` through the
  // hooks at (layer, kBlockInput) and returns what they leave, which the next
  // run_block(layer) takes as its input without reporting the site again. Lets a caller
  // act on what the hooks saw at a block's input (the search's bound: a candidate can
  // leave before the block is paid for) and skip a block whose input is all it needs.
  at::Tensor enter_block(int layer, const at::Tensor& hidden, ForwardState& state) const;
  // Final norm and LM head; float32 logits.
  virtual at::Tensor head(const at::Tensor& hidden, bool last_only) const = 0;

  // Block streaming, for models larger than device memory: blocks 0 .. resident_blocks-1
  // move to `device` for good; the other blocks' weights stay in host memory (where the
  // loader put them, see LoadOptions::stream_blocks) and each block's are copied to
  // `device` when it runs (the next one prefetched meanwhile) and dropped after, so the
  // device holds the embeddings, the head, the resident blocks and two streamed blocks.
  // kUnsupported when a block weight is not in host memory.
  void stream_blocks(c10::Device device, int resident_blocks = 0);
  bool streams_blocks() const { return streamer_ != nullptr; }
  int streamed_blocks() const;

  // Hooks see every site of every block, in registration order.
  HookHandle add_hook(std::shared_ptr<ActivationHook> hook);
  // A hook on one site, as a function (every layer; ctx.layer says which): return `x` to
  // observe, or a tensor of its shape to replace it. E.g.
  //   auto h = model->add_hook(Site::kDownProjInput, [&](const SiteContext& ctx, const at::Tensor& x) { ...; return x; });
  using SiteFunction = std::function<at::Tensor(const SiteContext& context, const at::Tensor& x)>;
  HookHandle add_hook(Site site, SiteFunction function);

  // Every linear layer inside the blocks (not the LM head), in execution order.
  virtual std::vector<LinearRef> linears() = 0;
  // Every weight by its Hugging Face name (tied weights listed once).
  virtual std::vector<std::pair<std::string, at::Tensor*>> named_weights() = 0;
  // The producer of every linear-input site of every block.
  virtual std::vector<SiteProducer> site_producers() = 0;

  // Bytes one batch row needs at the peak of a block run on `tokens` new positions that
  // attend to `keys` positions (cached ones included), for activations of
  // `element_size` bytes: the residual stream and its norm, q, k and v, the scores in
  // float32 and the probabilities, the attention output, the MLP's peak, and three times
  // that for ATen's own temporaries (measured: docs/reliability.md). What the prefix
  // search divides its memory bound by.
  std::int64_t block_working_bytes(std::int64_t tokens, std::int64_t keys, std::int64_t element_size) const;

  // The basis the model's cached values are in. Folding a scale into v_proj's rows
  // (SmoothQuant at o_proj's input) divides every value the model computes from then on,
  // so a cache computed before holds values of the old basis: the folding
  // (apply_smoothquant) calls change_value_basis(), and prepare refuses such a cache
  // (kMismatch) instead of running it silently wrong. Caches the model computes carry its
  // basis (KVCache::value_basis).
  std::uint64_t value_basis() const { return value_basis_; }
  void change_value_basis() { ++value_basis_; }

 protected:
  // Elements per token the family's MLP holds at its peak: gate, up, their product and
  // the output for the gated (LLaMA) MLP; families with a plain two-layer MLP override.
  virtual std::int64_t mlp_peak_elements_per_token() const { return 3 * config_.intermediate_size + config_.hidden_size; }
  // Passes x through the registered hooks for (layer, site).
  at::Tensor at_site(int layer, Site site, at::Tensor x, const ForwardState& state) const;
  // Family-specific per-forward data (e.g. rotary tables) once positions are known;
  // nothing for families whose positions are a learned table.
  virtual void prepare_positions(ForwardState& /*state*/) const {}
  // The family's block (what run_block runs, its weights wherever they are now).
  virtual at::Tensor compute_block(int layer, const at::Tensor& hidden, ForwardState& state) const = 0;
  // Attention over the cached past and this input, the same for every family. q is
  // [B, heads, T, D], k and v [B, kv_heads, T, D], positions already applied. Reports the
  // query, key, value, probability and output sites, extends the cache, scales the
  // scores by `scale`, adds state.attn_bias and state.head_bias, and returns the input of
  // the output projection [B, T, heads * D].
  at::Tensor attend(int layer, at::Tensor q, at::Tensor k, at::Tensor v, ForwardState& state, double scale) const;
 private:
  friend class HookHandle;
  void remove_hook(std::uint64_t id);

  ModelConfig config_;
  std::vector<std::pair<std::uint64_t, std::shared_ptr<ActivationHook>>> hooks_;
  std::uint64_t next_hook_id_ = 1;
  std::uint64_t value_basis_ = 0;
  std::shared_ptr<const void> alive_ = std::make_shared<int>(0);  // what HookHandles watch
  std::shared_ptr<BlockStreamer> streamer_;  // set by stream_blocks()
};

// The KV cache of a token sequence (positions 0..n-1), e.g. a prefix to cache in front
// of every input. Runs without autograd; detach-free tensors of the model's dtype.
KVCache compute_kv_cache(CausalLM& model, const std::vector<std::int64_t>& tokens);

}  // namespace cushioncache
