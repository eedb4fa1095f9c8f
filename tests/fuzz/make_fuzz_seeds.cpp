// Writes the seed corpus, one folder per fuzz target: valid files made with our own
// writers (or, for tokenizers, cut down from the real ones in the shared data), and for
// each a truncated and a bit-flipped copy. Deterministic: the same files every run.
//
//   make_fuzz_seeds <out-folder>
#include <ATen/ATen.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cushioncache/artifact/artifact.h"
#include "cushioncache/core/data_dir.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/files.h"
#include "cushioncache/io/safetensors.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/quant/recipe.h"
#include "support/gguf_writer.h"
#include "support/test_models.h"

namespace fs = std::filesystem;
namespace cc = cushioncache;
using nlohmann::json;

namespace {

void write_bytes(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// A valid seed, plus the two cheapest ways a file goes bad: cut short, and corrupted.
void add_seed(const fs::path& folder, const std::string& name, const std::string& bytes) {
  write_bytes(folder / name, bytes);
  write_bytes(folder / (name + ".truncated"), bytes.substr(0, bytes.size() / 2));
  std::string flipped = bytes;
  for (std::size_t i = 3; i < flipped.size(); i += 97) flipped[i] = static_cast<char>(flipped[i] ^ 0x5a);
  write_bytes(folder / (name + ".flipped"), flipped);
}

template <typename T>
void append(std::string& bytes, T value) {
  bytes.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

// A legacy-header llama2.c checkpoint with every weight llama2.c reads (and its RoPE tables).
std::string llama2c_checkpoint(int dim, int hidden, int layers, int heads, int kv_heads, int vocab, int seq_len,
                               bool shared_classifier) {
  std::string bytes;
  for (int v : {dim, hidden, layers, heads, kv_heads, shared_classifier ? vocab : -vocab, seq_len}) append<std::int32_t>(bytes, v);
  const std::int64_t head_size = dim / heads, kv_dim = head_size * kv_heads;
  std::int64_t floats = vocab * dim + layers * (2 * dim + dim * dim * 2 + 2 * dim * kv_dim + 3 * dim * hidden) + dim +
                        seq_len * head_size;  // freq_cis real + imag: seq_len * head_size / 2 each
  if (!shared_classifier) floats += vocab * dim;
  for (std::int64_t i = 0; i < floats; ++i) append<float>(bytes, static_cast<float>((i % 17) - 8) / 16.0f);
  return bytes;
}

// A llama2.c tokenizer.bin: max token length, then (score, length, bytes) per token.
std::string llama2c_tokenizer() {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    pieces.push_back(hex);
  }
  for (const char* p : {" ", "e", "t", "a", "o", " t", "he", " the", "Once", " upon", " a", " time"}) pieces.push_back(p);
  std::string bytes;
  append<std::int32_t>(bytes, 8);
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    append<float>(bytes, i < 259 ? 0.0f : -static_cast<float>(i));
    append<std::int32_t>(bytes, static_cast<std::int32_t>(pieces[i].size()));
    bytes += pieces[i];
  }
  return bytes;
}

// A real tokenizer.json cut down to its first `keep` ids (and the merges among them), so
// seeds stay small but keep the real normalizer, pre-tokenizer, decoder and post-processor.
std::string cut_down_tokenizer(const fs::path& path, std::int64_t keep) {
  json spec = json::parse(cc::read_file(path));
  json& model = spec["model"];
  json vocab = json::object();
  for (auto& [token, id] : model["vocab"].items()) {
    if (id.get<std::int64_t>() < keep) vocab[token] = id;
  }
  json merges = json::array();
  for (const auto& merge : model["merges"]) {
    std::string left, right;
    if (merge.is_string()) {
      const auto text = merge.get<std::string>();
      const auto space = text.find(' ');
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else {
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    }
    if (vocab.contains(left) && vocab.contains(right) && vocab.contains(left + right)) merges.push_back(merge);
  }
  model["vocab"] = vocab;
  model["merges"] = merges;
  return spec.dump(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_fuzz_seeds <out-folder>\n");
    return 2;
  }
  const fs::path out = argv[1];
  try {
    // safetensors, and a sharded index over it.
    const fs::path scratch = out / ".scratch";
    fs::create_directories(scratch);
    cc::write_safetensors(scratch / "t.safetensors",
                          {{"model.embed_tokens.weight", at::arange(24, at::kFloat).reshape({6, 4})},
                           {"model.norm.weight", at::ones({4}, at::kBFloat16)},
                           {"ids", at::arange(3, at::kLong)}},
                          {{"format", "pt"}});
    add_seed(out / "safetensors", "model.safetensors", cc::read_file(scratch / "t.safetensors"));
    add_seed(out / "safetensors_index", "model.safetensors.index.json",
             json{{"metadata", {{"total_size", 56}}},
                  {"weight_map", {{"a.weight", "model-00001-of-00001.safetensors"},
                                  {"b.bias", "model-00001-of-00001.safetensors"}}}}
                 .dump(2));
    add_seed(out / "safetensors_index", "missing_shard.json",
             json{{"weight_map", {{"a.weight", "model-00002-of-00002.safetensors"}}}}.dump());

    // A tiny LLaMA: config.json and a prefix artifact made for it.
    const auto config = cc::testing::tiny_llama_config(false);
    add_seed(out / "hf_config", "config.json", cc::to_hf_config(config).dump(2));
    // The other families' configs as their released checkpoints spell them.
    for (const char* family : {"opt", "opt-350m", "bloom", "gpt2"})
      add_seed(out / "hf_config", std::string(family) + ".json", cc::testing::hf_config_json(cc::testing::tiny_family_config(family)).dump(2));
    auto model = cc::build_model(cc::testing::random_weights(config, 1));
    cc::save_artifact(cc::make_token_artifact(*model, "text", {1, 5, 9}), scratch / "prefix.safetensors");
    add_seed(out / "artifact", "prefix.safetensors", cc::read_file(scratch / "prefix.safetensors"));

    // llama2.c checkpoints (shared and separate classifier) and a tokenizer.
    add_seed(out / "llama2c_checkpoint", "shared.bin", llama2c_checkpoint(8, 16, 1, 2, 2, 16, 4, true));
    add_seed(out / "llama2c_checkpoint", "gqa_unshared.bin", llama2c_checkpoint(8, 12, 2, 2, 1, 10, 6, false));
    add_seed(out / "llama2c_tokenizer", "tokenizer.bin", llama2c_tokenizer());

    // YAML: our own recipes and run configs, as shipped.
    const fs::path configs = fs::path(CC_SOURCE_DIR) / "configs";
    for (const auto& entry : fs::directory_iterator(configs)) {
      if (entry.path().extension() != ".yaml") continue;
      bool is_recipe = true;
      try {
        (void)cc::load_recipe(entry.path().string());
      } catch (const cc::Error&) {
        is_recipe = false;  // a run config
      }
      add_seed(out / (is_recipe ? "recipe" : "run_config"), entry.path().filename().string(), cc::read_file(entry.path()));
    }

    // Every preset recipe, written out (JSON is YAML).
    for (const auto& name : cc::preset_names()) add_seed(out / "recipe", name + ".yaml", cc::to_json(cc::load_recipe(name)).dump(2));

    // tokenizer.json cut down from the real ones; tokenizer_config.json variants.
    for (const char* name : {"llama2", "llama3"}) {
      const auto folder = cc::data_dir() / "tokenizers" / name;
      if (!fs::exists(folder / "tokenizer.json")) {
        std::fprintf(stderr, "make_fuzz_seeds: %s not found; its tokenizer seeds are left out\n", folder.c_str());
        continue;
      }
      add_seed(out / "tokenizer_json", std::string(name) + ".json", cut_down_tokenizer(folder / "tokenizer.json", 600));
      add_seed(out / "tokenizer_config", std::string(name) + ".json", cc::read_file(folder / "tokenizer_config.json"));
    }
    add_seed(out / "tokenizer_config", "object_tokens.json",
             json{{"add_bos_token", true}, {"add_eos_token", true}, {"bos_token", {{"content", "<s>"}, {"special", true}}},
                  {"eos_token", "</s>"}}
                 .dump(2));
    // GGUF: our writer's sample (every metadata type), a tensor of every type we dequantize,
    // and the start of the real SmolLM2 header (its metadata and vocabulary).
    add_seed(out / "gguf", "sample.gguf", cc::testing::sample_gguf().bytes());
    {
      cc::testing::GgufWriter every_type;
      every_type.add("general.architecture", cc::testing::GgufValue::string("llama"));
      for (std::uint32_t type = 0; type < 64; ++type) {
        const cc::GgmlTypeTraits* traits = cc::ggml_type_traits(type);
        if (traits == nullptr) continue;
        std::string data(static_cast<std::size_t>(traits->block_bytes), '\0');
        for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 37 + type) & 0x3f);  // small, finite scales
        every_type.add_tensor({traits->name, {static_cast<std::uint64_t>(traits->block_elements)}, type, data, std::nullopt});
      }
      add_seed(out / "gguf", "every_type.gguf", every_type.bytes());
    }
    {
      const char* model_dir = std::getenv("CC_MODEL_DIR");
      const char* home = std::getenv("HOME");
      const fs::path model = (model_dir != nullptr && *model_dir != '\0' ? fs::path(model_dir)
                                                                         : fs::path(home != nullptr ? home : "/root") / ".cache/cushioncache/models") /
                             "SmolLM2-135M-Instruct.Q4_1.gguf";
      if (fs::exists(model)) {
        std::ifstream in(model, std::ios::binary);
        std::string head(16 << 10, '\0');  // the header and the first tokens: a fuzzer-sized seed
        in.read(head.data(), static_cast<std::streamsize>(head.size()));
        head.resize(static_cast<std::size_t>(in.gcount()));
        add_seed(out / "gguf", "smollm2_header.gguf", head);
      } else {
        std::fprintf(stderr, "make_fuzz_seeds: %s not found; its GGUF seed is left out\n", model.c_str());
      }
    }
    fs::remove_all(scratch);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
