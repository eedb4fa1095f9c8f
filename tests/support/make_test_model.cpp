// Writes a small random model of one family as a Hugging Face folder (config.json as the
// family's released checkpoints spell it, model.safetensors), for the command-line tests.
//
//   make_test_model <family> <out-folder> [vocab-size]
//
// family: llama, mistral, qwen2, opt, opt-350m, bloom, gpt2. Deterministic weights.
#include <cstdio>
#include <exception>
#include <string>

#include "support/test_models.h"

namespace cc = cushioncache;

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: make_test_model <family> <out-folder> [vocab-size]\n");
    return 2;
  }
  try {
    const std::string family = argv[1];
    cc::ModelConfig config;
    if (family == "llama" || family == "mistral" || family == "qwen2") {
      config = cc::testing::tiny_llama_config(/*tied=*/false);
      config.model_type = family;
      if (family == "mistral") config.sliding_window = 24;
      if (family == "qwen2") config.attention_bias = true;
    } else {
      config = cc::testing::tiny_family_config(family);
    }
    if (argc == 4) config.vocab_size = std::stoll(argv[3]);
    cc::testing::write_hf_folder(argv[2], cc::testing::random_weights(config, 1));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_test_model: %s\n", e.what());
    return 1;
  }
}
