// What `cushioncache train` trains: a LLaMA-family model from scratch (sizes, optimizer,
// schedule, data, checkpointing and the emergence probe), read from a YAML file whose
// every key is checked.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace cushioncache {

struct TrainModelShape {
  std::int64_t hidden_size = 128;
  std::int64_t num_layers = 4;
  std::int64_t num_heads = 4;
  std::int64_t num_kv_heads = 0;       // 0 = num_heads
  std::int64_t intermediate_size = 384;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  bool tie_word_embeddings = false;
  double init_std = 0.02;              // normal init of every matrix, as transformers' initializer_range
};

struct TrainOptimizer {
  double lr = 3e-3;
  double min_lr = 3e-4;        // the cosine ends here
  std::int64_t warmup_steps = 100;
  double weight_decay = 0.1;   // on matrices and embeddings, not on norm gains
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;      // global L2 norm; 0 = off
};

// Measured on held-out text at every checkpoint: what docs/outliers.md tabulates.
struct TrainProbe {
  std::string data = "wikitext2";  // never part of the training corpus
  std::int64_t samples = 4;
  std::int64_t seq_len = 256;
  // Float vs W8A8 per-tensor static perplexity on this many windows (0 = skip).
  std::int64_t ppl_windows = 16;
  std::string quant = "w8a8-per-tensor-static";
};

struct TrainConfig {
  std::string name;
  std::string output;                 // the HF model folder written (checkpoints/ inside)
  std::string corpus;                 // .jsonl ("text" per line) or .txt (see io/corpus.h)
  std::string tokenizer = "bytes";    // "bytes" or a tokenizer.json / folder to copy
  std::string device = "cpu";
  std::string precision = "float32";  // float32 | bfloat16 (autocast; weights and optimizer stay float32)
  TrainModelShape model;
  TrainOptimizer optimizer;
  std::int64_t steps = 1000;
  std::int64_t batch_size = 16;       // sequences per micro-batch
  std::int64_t grad_accum = 1;        // micro-batches per optimizer step
  std::int64_t seq_len = 256;         // tokens per sequence, BOS first
  std::uint64_t seed = 0;
  std::int64_t log_every = 10;
  std::int64_t checkpoint_every = 500;
  TrainProbe probe;
  std::int64_t threads = 0;           // CPU threads; 0 = LibTorch's default
};

// kNotFound / kInvalidConfig naming the file, line and key.
TrainConfig load_train_config(const std::string& path);
// Range checks shared by the YAML reader and callers that fill the struct themselves.
void validate(const TrainConfig& config);
nlohmann::json to_json(const TrainConfig& config);

// Linear warmup from 0 to lr over warmup_steps, then cosine decay to min_lr at `steps`.
double learning_rate_at(const TrainOptimizer& optimizer, std::int64_t step, std::int64_t steps);

}  // namespace cushioncache
