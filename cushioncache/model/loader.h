// Loading models from disk: Hugging Face model folders (config.json + safetensors,
// sharded or not) and llama2.c checkpoints, converted once at load to the Hugging Face
// layout (q/k rows permuted from interleaved RoPE pairs to half rotation). Also writes a
// model back out as a Hugging Face folder.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "cushioncache/model/block_streamer.h"
#include "cushioncache/model/causal_lm.h"

namespace cushioncache {

struct Llama2cCheckpoint;
class GgufFile;

struct LoadOptions {
  c10::Device device = c10::Device(c10::kCPU);
  // Default: float32 on CPU, the checkpoint's torch_dtype on CUDA.
  std::optional<c10::ScalarType> dtype;
  // Keep the blocks' weights in host memory (views of the checkpoint's memory map where
  // the dtype allows) and copy each block to `device` only while it runs (CausalLM::stream_blocks): for models larger
  // than the device's memory. The embeddings and the head live on the device.
  bool stream_blocks = false;
  // A budget for the weights' device memory: everything on the device
  // when it fits; otherwise the first blocks stay resident and the rest stream, with room
  // for two streamed blocks (place_blocks in model/block_streamer.h). Activations need
  // memory beside it. kInvalidArgument "the device memory budget ..." when it is not
  // positive or too small even for streaming.
  std::optional<std::int64_t> max_device_bytes;
};

// Where a model's weights sit on the device under a budget (LoadOptions::max_device_bytes),
// from its config alone, no weights read: what loading does, and what
// `cushioncache plan-memory` prints for a checkpoint too large for this machine.
struct StreamingPlan {
  std::vector<std::int64_t> block_bytes;  // per block, in the dtype asked for
  std::int64_t other_bytes = 0;           // embeddings, final norm, head (once when tied)
  BlockPlacement placement;
};
StreamingPlan plan_streaming(const ModelConfig& config, c10::ScalarType dtype, std::int64_t budget_bytes);

// `path` is a Hugging Face model folder, a llama.cpp .gguf file or a llama2.c .bin. Errors name the file and,
// for weights, the tensor (missing, wrong shape, unreadable dtype).
std::unique_ptr<CausalLM> load_model(const std::filesystem::path& path, const LoadOptions& options = {});

// A config plus its weights under Hugging Face names.
struct HfWeights {
  ModelConfig config;
  std::map<std::string, at::Tensor> tensors;
};

// llama2.c -> Hugging Face layout: names mapped, q/k rows permuted, RMSNorm eps 1e-5,
// rope theta 10000, BOS 1 / EOS 2 as llama2.c uses them.
HfWeights llama2c_to_hf(const Llama2cCheckpoint& checkpoint);

// llama.cpp GGUF (architectures llama and qwen2) -> Hugging Face layout: the config from
// the `<arch>.*` keys and the tokenizer's special ids, every tensor dequantized to float32,
// names mapped, q/k rows permuted back from llama.cpp's interleaved RoPE order (LLaMA only:
// llama.cpp's converter permutes them for the llama architecture alone), an absent
// `output.weight` read as tied embeddings. Errors name the file and the key or tensor.
HfWeights gguf_to_hf(const GgufFile& file);

// Builds a model from in-memory weights (used by the loader and by tests).
std::unique_ptr<CausalLM> build_model(const HfWeights& weights, const LoadOptions& options = {});

// Writes config.json and model.safetensors (atomically) into `folder`, creating it.
void save_hf_model(CausalLM& model, const std::filesystem::path& folder);

// Where the tokenizer of a model normally lives: the model folder itself, a .gguf file
// itself (its vocabulary is in its metadata), or for a llama2.c checkpoint a
// tok<vocab>.bin or tokenizer.bin beside it.
std::optional<std::filesystem::path> default_tokenizer_path(const std::filesystem::path& model_path);

}  // namespace cushioncache
