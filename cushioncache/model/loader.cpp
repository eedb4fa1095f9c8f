#include "cushioncache/model/loader.h"

#include <functional>
#include <set>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/core/strings.h"
#include "cushioncache/core/files.h"
#include "cushioncache/core/log.h"
#include "cushioncache/core/memory_usage.h"
#include "cushioncache/core/tensor_options.h"
#include "cushioncache/io/gguf.h"
#include "cushioncache/io/llama2c.h"
#include "cushioncache/io/safetensors.h"
#include "cushioncache/model/block_streamer.h"
#include "cushioncache/model/family.h"

namespace cushioncache {
namespace fs = std::filesystem;

namespace {

c10::ScalarType resolve_dtype(const LoadOptions& options, const ModelConfig& config) {
  c10::ScalarType dtype = options.dtype.value_or(options.device.is_cpu() ? at::kFloat : config.checkpoint_dtype);
  check_dtype_runs_on(dtype, options.device);
  return dtype;
}

void check_shape(const std::string& name, const at::Tensor& t, const std::vector<std::int64_t>& shape) {
  if (t.sizes().vec() != shape)
    throw_error(ErrorKind::kMismatch, "tensor '{}' has shape [{}], the config implies [{}]", name, fmt::join(t.sizes(), ", "),
                fmt::join(shape, ", "));
  if (!at::isFloatingType(t.scalar_type()))
    throw_error(ErrorKind::kMismatch, "tensor '{}' has dtype {}, expected a float type", name, c10::toString(t.scalar_type()));
}

std::unique_ptr<CausalLM> build(const ModelConfig& config, const LoadOptions& options,
                                const std::function<at::Tensor(const std::string&)>& fetch) {
  const c10::ScalarType dtype = resolve_dtype(options, config);
  const ModelFamily& family = model_family(config.model_type);
  if (options.max_device_bytes && *options.max_device_bytes <= 0)
    throw_error(ErrorKind::kInvalidArgument, "the device memory budget must be positive, got {} bytes", *options.max_device_bytes);
  // Planned from the config, before any weight is read: a budget too small fails fast.
  int resident_blocks = options.stream_blocks ? 0 : config.num_layers;
  if (options.max_device_bytes) {
    const StreamingPlan plan = plan_streaming(config, dtype, *options.max_device_bytes);
    resident_blocks = plan.placement.resident_blocks;
    log::info("device memory budget {}: {} of {} blocks resident, the weights take {} of the device at most",
              format_bytes(*options.max_device_bytes), resident_blocks, config.num_layers, format_bytes(plan.placement.peak_device_bytes));
  }
  auto model = family.build(config, [&](const std::string& name, const std::vector<std::int64_t>& shape) {
    at::Tensor t = fetch(name);
    check_shape(name, t, shape);
    if (block_of(family, name) < resident_blocks) return t.to(options.device, dtype);  // also the non-block weights (-1)
    // Not pinned: pinning would copy every block into RAM, where the memory map lets the
    // page cache hold what fits; the streamer stages each copy through a pinned buffer.
    return t.to(at::kCPU, dtype);
  });
  if (resident_blocks < config.num_layers) model->stream_blocks(options.device, resident_blocks);
  return model;
}

// Buffers older transformers versions saved with the weights; no model reads them.
bool is_saved_buffer(const std::string& name) {
  for (const char* buffer : {"rotary_emb.inv_freq", ".attn.bias", ".attn.masked_bias"})
    if (ends_with(name, buffer)) return true;
  return false;
}

// llama2.c stores q/k rows with RoPE pairs interleaved (2i, 2i+1); Hugging Face pairs
// dimension i with i + head_dim/2. Reordering the rows once makes the two identical.
at::Tensor interleaved_to_half_rotation(const at::Tensor& w, std::int64_t heads) {
  const std::int64_t out = w.size(0), in = w.size(1);
  return w.view({heads, out / heads / 2, 2, in}).transpose(1, 2).reshape({out, in});
}

}  // namespace

StreamingPlan plan_streaming(const ModelConfig& config, c10::ScalarType dtype, std::int64_t budget_bytes) {
  const ModelFamily& family = model_family(config.model_type);
  StreamingPlan plan;
  plan.block_bytes.assign(static_cast<std::size_t>(config.num_layers), 0);
  const std::int64_t element = static_cast<std::int64_t>(c10::elementSize(dtype));
  for (const auto& [name, shape] : family.expected_weights(config)) {
    std::int64_t bytes = element;
    for (std::int64_t d : shape) bytes *= d;
    const int layer = block_of(family, name);
    if (layer < 0)
      plan.other_bytes += bytes;
    else
      plan.block_bytes.at(static_cast<std::size_t>(layer)) += bytes;
  }
  plan.placement = place_blocks(plan.block_bytes, plan.other_bytes, budget_bytes);
  return plan;
}

HfWeights llama2c_to_hf(const Llama2cCheckpoint& ckpt) {
  const Llama2cHeader& h = ckpt.header;
  HfWeights out;
  ModelConfig& c = out.config;
  c.model_type = "llama";
  c.vocab_size = h.vocab_size;
  c.hidden_size = h.dim;
  c.intermediate_size = h.hidden_dim;
  c.num_layers = h.n_layers;
  c.num_heads = h.n_heads;
  c.num_kv_heads = h.n_kv_heads;
  c.head_dim = h.dim / h.n_heads;
  c.max_position_embeddings = h.seq_len;
  c.norm_eps = 1e-5;  // llama2.c's rmsnorm constant
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = h.shared_classifier;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  c.checkpoint_dtype = at::kFloat;
  c.validate();

  auto& t = out.tensors;
  const auto& src = ckpt.tensors;
  t["model.embed_tokens.weight"] = src.at("tok_embeddings.weight");
  for (int l = 0; l < h.n_layers; ++l) {
    const std::string s = fmt::format("layers.{}.", l), d = fmt::format("model.layers.{}.", l);
    t[d + "input_layernorm.weight"] = src.at(s + "attention_norm.weight");
    t[d + "self_attn.q_proj.weight"] = interleaved_to_half_rotation(src.at(s + "attention.wq.weight"), h.n_heads);
    t[d + "self_attn.k_proj.weight"] = interleaved_to_half_rotation(src.at(s + "attention.wk.weight"), h.n_kv_heads);
    t[d + "self_attn.v_proj.weight"] = src.at(s + "attention.wv.weight");
    t[d + "self_attn.o_proj.weight"] = src.at(s + "attention.wo.weight");
    t[d + "post_attention_layernorm.weight"] = src.at(s + "ffn_norm.weight");
    t[d + "mlp.gate_proj.weight"] = src.at(s + "feed_forward.w1.weight");
    t[d + "mlp.down_proj.weight"] = src.at(s + "feed_forward.w2.weight");
    t[d + "mlp.up_proj.weight"] = src.at(s + "feed_forward.w3.weight");
  }
  t["model.norm.weight"] = src.at("norm.weight");
  if (!h.shared_classifier) t["lm_head.weight"] = src.at("output.weight");
  return out;
}

HfWeights gguf_to_hf(const GgufFile& file) {
  return with_context(file.path().string(), [&] {
    const std::string arch = file.required_string("general.architecture");
    if (arch != "llama" && arch != "qwen2")
      throw_error(ErrorKind::kUnsupported, "general.architecture '{}' is not supported from GGUF (llama and qwen2 are)", arch);
    auto key = [&](const char* name) { return arch + "." + name; };
    if (file.has(key("attention.head_count_kv")) && file.value_type(key("attention.head_count_kv")) == GgufValueType::kArray)
      throw_error(ErrorKind::kUnsupported, "'{}' varies by layer; only one KV head count for all layers is supported",
                  key("attention.head_count_kv"));
    if (file.contains("rope_freqs.weight"))
      throw_error(ErrorKind::kUnsupported, "tensor 'rope_freqs.weight' (LLaMA-3.1 frequency-dependent RoPE scaling) is not "
                  "supported from GGUF; load the Hugging Face checkpoint instead");

    HfWeights out;
    ModelConfig& c = out.config;
    c.model_type = arch;
    c.num_layers = file.required_int(key("block_count"));
    c.hidden_size = file.required_int(key("embedding_length"));
    c.intermediate_size = file.required_int(key("feed_forward_length"));
    c.num_heads = file.required_int(key("attention.head_count"));
    c.num_kv_heads = file.optional_int(key("attention.head_count_kv")).value_or(c.num_heads);
    c.head_dim = file.optional_int(key("attention.key_length")).value_or(c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
    c.max_position_embeddings = file.optional_int(key("context_length")).value_or(2048);
    c.norm_eps = file.optional_float(key("attention.layer_norm_rms_epsilon")).value_or(1e-5);
    c.rope_theta = file.optional_float(key("rope.freq_base")).value_or(10000.0);
    const std::string scaling = file.has(key("rope.scaling.type")) ? file.required_string(key("rope.scaling.type")) : "none";
    if (scaling == "linear") {
      c.rope_scaling.type = RopeScalingType::kLinear;
      c.rope_scaling.factor = file.optional_float(key("rope.scaling.factor")).value_or(1.0);
    } else if (scaling != "none") {
      throw_error(ErrorKind::kUnsupported, "'{}' = '{}' is not supported (none and linear are)", key("rope.scaling.type"), scaling);
    }
    c.attention_bias = arch == "qwen2";  // Qwen2 has q/k/v biases, LLaMA none
    c.tie_word_embeddings = !file.contains("output.weight");
    c.vocab_size = file.tensor("token_embd.weight").shape.at(0);
    if (auto bos = file.optional_int("tokenizer.ggml.bos_token_id")) c.bos_token_id = *bos;
    if (auto eos = file.optional_int("tokenizer.ggml.eos_token_id")) c.eos_token_ids = {*eos};
    // Dequantized values are exact in float32, not in a 16-bit type: float32 unless every
    // matrix is stored in one 16-bit float type (then that, as a Hugging Face checkpoint's
    // torch_dtype would say).
    c.checkpoint_dtype = at::kFloat;
    std::set<std::uint32_t> types;
    for (const GgufTensorInfo& t : file.tensors())
      if (t.shape.size() == 2) types.insert(t.type);
    if (types == std::set<std::uint32_t>{static_cast<std::uint32_t>(GgmlType::kF16)}) c.checkpoint_dtype = at::kHalf;
    if (types == std::set<std::uint32_t>{static_cast<std::uint32_t>(GgmlType::kBF16)}) c.checkpoint_dtype = at::kBFloat16;
    c.validate();

    std::set<std::string> used;
    auto take = [&](const std::string& name) {
      if (!file.contains(name)) throw_error(ErrorKind::kNotFound, "missing tensor '{}'", name);
      used.insert(name);
      return file.dequantize(name);
    };
    // llama.cpp's converter interleaves the RoPE pairs of q/k rows for the llama
    // architecture only (what llama2.c does too), so the same permutation undoes it.
    auto rotary = [&](const std::string& name, std::int64_t heads) {
      at::Tensor w = take(name);
      return arch == "llama" ? interleaved_to_half_rotation(w, heads) : w;
    };
    auto& t = out.tensors;
    t["model.embed_tokens.weight"] = take("token_embd.weight");
    for (std::int64_t l = 0; l < c.num_layers; ++l) {
      const std::string s = fmt::format("blk.{}.", l), d = fmt::format("model.layers.{}.", l);
      t[d + "input_layernorm.weight"] = take(s + "attn_norm.weight");
      t[d + "self_attn.q_proj.weight"] = rotary(s + "attn_q.weight", c.num_heads);
      t[d + "self_attn.k_proj.weight"] = rotary(s + "attn_k.weight", c.num_kv_heads);
      t[d + "self_attn.v_proj.weight"] = take(s + "attn_v.weight");
      t[d + "self_attn.o_proj.weight"] = take(s + "attn_output.weight");
      if (c.attention_bias) {
        t[d + "self_attn.q_proj.bias"] = take(s + "attn_q.bias");
        t[d + "self_attn.k_proj.bias"] = take(s + "attn_k.bias");
        t[d + "self_attn.v_proj.bias"] = take(s + "attn_v.bias");
      }
      t[d + "post_attention_layernorm.weight"] = take(s + "ffn_norm.weight");
      t[d + "mlp.gate_proj.weight"] = take(s + "ffn_gate.weight");
      t[d + "mlp.up_proj.weight"] = take(s + "ffn_up.weight");
      t[d + "mlp.down_proj.weight"] = take(s + "ffn_down.weight");
    }
    t["model.norm.weight"] = take("output_norm.weight");
    if (!c.tie_word_embeddings) t["lm_head.weight"] = take("output.weight");

    std::vector<std::string> unused;
    for (const GgufTensorInfo& info : file.tensors())
      if (!used.count(info.name)) unused.push_back(info.name);
    if (!unused.empty())
      log::warn("{}: {} tensor(s) not used by the model, e.g. '{}'", file.path().string(), unused.size(), unused.front());
    return out;
  });
}

std::unique_ptr<CausalLM> build_model(const HfWeights& weights, const LoadOptions& options) {
  return build(weights.config, options, [&](const std::string& name) {
    auto it = weights.tensors.find(name);
    if (it == weights.tensors.end()) throw_error(ErrorKind::kNotFound, "missing tensor '{}'", name);
    return it->second;
  });
}

std::unique_ptr<CausalLM> load_model(const fs::path& path, const LoadOptions& options) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw_error(ErrorKind::kNotFound, "model {} does not exist", path.string());
  if (!fs::is_directory(path, ec)) {
    if (is_gguf_file(path)) {
      const GgufFile file = GgufFile::open(path);
      return with_context(path.string(), [&] { return build_model(gguf_to_hf(file), options); });
    }
    if (path.extension() == ".safetensors")
      throw_error(ErrorKind::kInvalidArgument, "{}: pass the model folder (with config.json), not the weights file", path.string());
    const Llama2cCheckpoint ckpt = read_llama2c_checkpoint(path);
    return with_context(path.string(), [&] { return build_model(llama2c_to_hf(ckpt), options); });
  }

  const fs::path config_path = path / "config.json";
  if (!fs::exists(config_path)) throw_error(ErrorKind::kNotFound, "{}: no config.json in the model folder", path.string());
  const ModelConfig config = read_hf_config(config_path);
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(path);
  const ModelFamily& family = model_family(config.model_type);
  // Checkpoints saved from the base model name their tensors without its prefix
  // ("decoder.layers.0..." for facebook/opt-*, "h.0..." for gpt2 and bigscience/bloom-*).
  auto stored_name = [&](const std::string& name) {
    if (ckpt.contains(name) || name.rfind(family.base_prefix, 0) != 0) return name;
    const std::string bare = name.substr(family.base_prefix.size());
    return ckpt.contains(bare) ? bare : name;
  };
  auto model = with_context(ckpt.source().string(), [&] {
    // Views of the memory map: a float32 checkpoint on CPU in float32 is used in place
    // (read from disk as touched, never copied); conversions copy as they must.
    return build(config, options, [&](const std::string& name) { return ckpt.view(stored_name(name)); });
  });

  std::vector<std::string> unused;
  std::set<std::string> used;
  for (const auto& [name, shape] : family.expected_weights(config)) used.insert(stored_name(name));
  for (const auto& name : ckpt.names())
    if (!used.count(name) && !is_saved_buffer(name)) unused.push_back(name);
  if (!unused.empty())
    log::warn("{}: {} tensor(s) not used by the model, e.g. '{}'", ckpt.source().string(), unused.size(), unused.front());
  return model;
}

void save_hf_model(CausalLM& model, const fs::path& folder) {
  ModelConfig config = model.config();
  config.checkpoint_dtype = model.dtype();
  const ModelFamily& family = model_family(config.model_type);
  // Checked before anything is created: an INT8 model leaves no half-written folder.
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (auto& [name, tensor] : model.named_weights()) {
    if (!at::isFloatingType(tensor->scalar_type()))
      throw_error(ErrorKind::kUnsupported, "{}: tensor '{}' is {} (the model runs on INT8 kernels); save the float model instead",
                  folder.string(), name, c10::toString(tensor->scalar_type()));
    tensors.emplace_back(name, family.checkpoint_layout != nullptr ? family.checkpoint_layout(name, *tensor) : *tensor);
  }
  fs::create_directories(folder);
  const std::string config_text = to_hf_config(config).dump(2) + "\n";
  write_safetensors(folder / "model.safetensors", tensors, {{"format", "pt"}});
  write_file_atomically(folder / "config.json", [&](std::ostream& out) { out << config_text; });
}

std::optional<fs::path> default_tokenizer_path(const fs::path& model_path) {
  std::error_code ec;
  if (fs::is_directory(model_path, ec)) {
    for (const char* f : {"tokenizer.json", "vocab.json", "encoder.json"})
      if (fs::exists(model_path / f)) return model_path;
    return std::nullopt;
  }
  if (is_gguf_file(model_path)) return model_path;
  const fs::path folder = model_path.parent_path();
  const int vocab = read_llama2c_header(model_path).vocab_size;
  for (const std::string& f : {fmt::format("tok{}.bin", vocab), std::string("tokenizer.bin")})
    if (fs::exists(folder / f)) return folder / f;
  return std::nullopt;
}

}  // namespace cushioncache
