// llama2.c checkpoints (karpathy/llama2.c): the legacy header (7 int32, negative vocab =
// unshared classifier) and the versioned "ak42" header (version 1 = float32, version 2 =
// Q8_0 group-quantized, dequantized here). Tensors keep llama2.c's own names and its
// interleaved RoPE layout; converting to the Hugging Face layout is the model loader's job.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include <ATen/core/Tensor.h>

namespace cushioncache {

struct Llama2cHeader {
  int version = 0;  // 0 = legacy
  int dim = 0;
  int hidden_dim = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int vocab_size = 0;
  int seq_len = 0;
  bool shared_classifier = true;
  int group_size = 0;  // version 2 only
};

struct Llama2cCheckpoint {
  Llama2cHeader header;
  // float32 CPU tensors named as in llama2.c's model.py: "tok_embeddings.weight",
  // "layers.{i}.attention.wq.weight", "layers.{i}.feed_forward.w1.weight", "norm.weight",
  // "output.weight" (only if the classifier is not shared), ...
  std::map<std::string, at::Tensor> tensors;
};

// Throws kNotFound / kCorruptInput naming the file: bad magic or version, implausible
// header values, or a file size that does not match the header.
Llama2cCheckpoint read_llama2c_checkpoint(const std::filesystem::path& path);

// The header alone (cheap: reads the first 256 bytes); the same checks on its values.
Llama2cHeader read_llama2c_header(const std::filesystem::path& path);

}  // namespace cushioncache
