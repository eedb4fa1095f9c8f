// llama2.c checkpoints: the real stories260K model against a float64 re-implementation of
// llama2.c's own run.c forward (interleaved RoPE pairs, token by token), the conversion to
// the Hugging Face layout, the versioned "ak42" formats, and corrupt files.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "cushioncache/core/files.h"
#include "cushioncache/io/llama2c.h"
#include "cushioncache/model/loader.h"
#include "support/test_support.h"

namespace cc = cushioncache;
namespace fs = std::filesystem;
using cc::testing::max_abs_diff;

namespace {

// run.c's forward, one position at a time, in float64 on llama2.c's own tensors.
at::Tensor run_c_logits(const cc::Llama2cCheckpoint& ckpt, const std::vector<std::int64_t>& tokens) {
  const auto& h = ckpt.header;
  auto W = [&](const std::string& name) { return ckpt.tensors.at(name).to(at::kDouble); };
  const std::int64_t head_size = h.dim / h.n_heads, kv_dim = head_size * h.n_kv_heads, kv_mul = h.n_heads / h.n_kv_heads;
  auto rmsnorm = [](const at::Tensor& x, const at::Tensor& w) { return w * x / std::sqrt(x.pow(2).mean().item<double>() + 1e-5); };
  std::vector<std::vector<at::Tensor>> key_cache(h.n_layers), value_cache(h.n_layers);
  std::vector<at::Tensor> all_logits;
  for (std::size_t pos = 0; pos < tokens.size(); ++pos) {
    at::Tensor x = W("tok_embeddings.weight")[tokens[pos]];
    for (int l = 0; l < h.n_layers; ++l) {
      const std::string p = "layers." + std::to_string(l) + ".";
      at::Tensor xb = rmsnorm(x, W(p + "attention_norm.weight"));
      at::Tensor q = W(p + "attention.wq.weight").mv(xb), k = W(p + "attention.wk.weight").mv(xb);
      at::Tensor v = W(p + "attention.wv.weight").mv(xb);
      for (std::int64_t i = 0; i < h.dim; i += 2) {
        const double freq = 1.0 / std::pow(10000.0, static_cast<double>(i % head_size) / static_cast<double>(head_size));
        const double c = std::cos(pos * freq), s = std::sin(pos * freq);
        for (at::Tensor* vec : {&q, &k}) {
          if (vec == &k && i >= kv_dim) continue;
          const double v0 = (*vec)[i].item<double>(), v1 = (*vec)[i + 1].item<double>();
          (*vec)[i] = v0 * c - v1 * s;
          (*vec)[i + 1] = v0 * s + v1 * c;
        }
      }
      key_cache[l].push_back(k);
      value_cache[l].push_back(v);
      at::Tensor keys = at::stack(key_cache[l]), values = at::stack(value_cache[l]);  // [pos+1, kv_dim]
      std::vector<at::Tensor> heads;
      for (std::int64_t head = 0; head < h.n_heads; ++head) {
        const std::int64_t kv = (head / kv_mul) * head_size;
        at::Tensor att = at::softmax(keys.narrow(1, kv, head_size).mv(q.narrow(0, head * head_size, head_size)) / std::sqrt(static_cast<double>(head_size)), 0);
        heads.push_back(values.narrow(1, kv, head_size).t().mv(att));
      }
      x = x + W(p + "attention.wo.weight").mv(at::cat(heads));
      xb = rmsnorm(x, W(p + "ffn_norm.weight"));
      at::Tensor h1 = W(p + "feed_forward.w1.weight").mv(xb);
      x = x + W(p + "feed_forward.w2.weight").mv(h1 * at::sigmoid(h1) * W(p + "feed_forward.w3.weight").mv(xb));
    }
    x = rmsnorm(x, W("norm.weight"));
    const std::string cls = h.shared_classifier ? "tok_embeddings.weight" : "output.weight";
    all_logits.push_back(W(cls).mv(x));
  }
  return at::stack(all_logits);
}

const std::vector<std::int64_t> kTokens = {1, 403, 407, 261, 378, 293, 415, 284, 260, 276, 353, 269, 400, 46, 365, 420, 300, 259};

// Writes a version-1 or version-2 file the way llama2.c's export.py does.
void write_versioned(const fs::path& path, const cc::Llama2cCheckpoint& src, int version, int group_size) {
  const auto& h = src.header;
  std::ofstream out(path, std::ios::binary);
  auto i32 = [&](std::int32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
  auto f32 = [&](const at::Tensor& t) {
    at::Tensor c = t.to(at::kFloat).contiguous();
    out.write(static_cast<const char*>(c.data_ptr()), c.numel() * 4);
  };
  std::uint32_t magic = 0x616b3432;
  out.write(reinterpret_cast<const char*>(&magic), 4);
  i32(version);
  for (int v : {h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len}) i32(v);
  out.put(h.shared_classifier ? 1 : 0);
  if (version == 2) i32(group_size);
  while (out.tellp() < 256) out.put(0);
  auto layers = [&](const char* suffix) {
    std::vector<at::Tensor> v;
    for (int l = 0; l < h.n_layers; ++l) v.push_back(src.tensors.at("layers." + std::to_string(l) + "." + suffix));
    return v;
  };
  for (const char* n : {"attention_norm.weight", "ffn_norm.weight"})
    for (auto& t : layers(n)) f32(t);
  f32(src.tensors.at("norm.weight"));
  std::vector<at::Tensor> weights{src.tensors.at("tok_embeddings.weight")};
  for (const char* n : {"attention.wq.weight", "attention.wk.weight", "attention.wv.weight", "attention.wo.weight",
                        "feed_forward.w1.weight", "feed_forward.w2.weight", "feed_forward.w3.weight"})
    for (auto& t : layers(n)) weights.push_back(t);
  for (auto& w : weights) {
    if (version == 1) {
      f32(w);
      continue;
    }
    at::Tensor g = w.reshape({-1, group_size});
    at::Tensor scale = g.abs().amax(1) / 127.0;
    at::Tensor q = at::round(g / scale.unsqueeze(1)).to(at::kChar).contiguous();
    out.write(static_cast<const char*>(q.data_ptr()), q.numel());
    f32(scale);
  }
}

}  // namespace

TEST_CASE("stories260K loads with the header the data README documents", "[llama2c]") {
  auto bin = cc::testing::data_file("models/stories260K/stories260K.bin");
  if (!bin) return;
  const auto ckpt = cc::read_llama2c_checkpoint(*bin);
  const auto& h = ckpt.header;
  CHECK(h.version == 0);
  CHECK(h.dim == 64);
  CHECK(h.hidden_dim == 172);
  CHECK(h.n_layers == 5);
  CHECK(h.n_heads == 8);
  CHECK(h.n_kv_heads == 4);
  CHECK(h.vocab_size == 512);
  CHECK(h.seq_len == 512);
  CHECK(h.shared_classifier);
}

TEST_CASE("the model matches llama2.c's own forward pass on stories260K", "[llama2c]") {
  auto bin = cc::testing::data_file("models/stories260K/stories260K.bin");
  if (!bin) return;
  const auto ckpt = cc::read_llama2c_checkpoint(*bin);
  auto model = cc::load_model(*bin);
  at::Tensor ours = model->forward(at::tensor(kTokens, at::kLong).unsqueeze(0)).logits.squeeze(0);
  at::Tensor expected = run_c_logits(ckpt, kTokens);
  CHECK(max_abs_diff(ours, expected) < 1e-4);
  CHECK(at::equal(ours.argmax(-1), expected.argmax(-1)));
}

TEST_CASE("a llama2.c model converted to the HF layout gives the same logits", "[llama2c]") {
  auto bin = cc::testing::data_file("models/stories260K/stories260K.bin");
  if (!bin) return;
  cc::testing::TempDir dir;
  auto original = cc::load_model(*bin);
  cc::save_hf_model(*original, dir / "hf");
  CHECK(fs::exists(dir / "hf" / "config.json"));
  CHECK(fs::exists(dir / "hf" / "model.safetensors"));
  auto converted = cc::load_model(dir / "hf");
  CHECK(converted->config().tie_word_embeddings);
  CHECK(converted->config().norm_eps == 1e-5);
  const at::Tensor ids = at::tensor(kTokens, at::kLong).unsqueeze(0);
  CHECK(max_abs_diff(converted->forward(ids).logits, original->forward(ids).logits) == 0.0);
}

TEST_CASE("versioned llama2.c files: float32 (v1) and Q8_0 (v2)", "[llama2c]") {
  auto bin = cc::testing::data_file("models/stories260K/stories260K.bin");
  if (!bin) return;
  const auto legacy = cc::read_llama2c_checkpoint(*bin);
  cc::testing::TempDir dir;
  const at::Tensor ids = at::tensor(kTokens, at::kLong).unsqueeze(0);
  at::Tensor reference = cc::load_model(*bin)->forward(ids).logits;

  write_versioned(dir / "v1.bin", legacy, 1, 0);
  const auto v1 = cc::read_llama2c_checkpoint(dir / "v1.bin");
  CHECK(v1.header.version == 1);
  for (const auto& [name, t] : legacy.tensors) CHECK(at::equal(v1.tensors.at(name), t));
  CHECK(max_abs_diff(cc::load_model(dir / "v1.bin")->forward(ids).logits, reference) == 0.0);

  write_versioned(dir / "v2.bin", legacy, 2, 64);
  const auto v2 = cc::read_llama2c_checkpoint(dir / "v2.bin");
  CHECK(v2.header.version == 2);
  CHECK(v2.header.group_size == 64);
  CHECK(at::equal(v2.tensors.at("layers.2.ffn_norm.weight"), legacy.tensors.at("layers.2.ffn_norm.weight")));  // norms stay fp32
  at::Tensor w = legacy.tensors.at("layers.1.attention.wq.weight").reshape({-1, 64});
  at::Tensor scale = w.abs().amax(1, true) / 127.0;
  at::Tensor dequantized = (at::round(w / scale) * scale).reshape({64, 64});
  CHECK(max_abs_diff(v2.tensors.at("layers.1.attention.wq.weight"), dequantized) < 1e-6);
  at::Tensor q8_logits = cc::load_model(dir / "v2.bin")->forward(ids).logits;
  CHECK(max_abs_diff(q8_logits, reference) < 0.5);  // int8 weights: close, not equal
  CHECK(max_abs_diff(q8_logits, reference) > 0.0);
}

TEST_CASE("corrupt llama2.c files give named errors", "[llama2c][errors]") {
  auto bin = cc::testing::data_file("models/stories260K/stories260K.bin");
  if (!bin) return;
  cc::testing::TempDir dir;
  const std::string bytes = cc::read_file(*bin);
  SECTION("truncated") {
    std::ofstream(dir / "cut.bin", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    cc::testing::expect_error([&] { cc::load_model(dir / "cut.bin"); }, cc::ErrorKind::kCorruptInput, {"cut.bin", "truncated"});
  }
  SECTION("trailing bytes") {
    std::ofstream(dir / "long.bin", std::ios::binary) << bytes << "xxxx";
    cc::testing::expect_error([&] { cc::load_model(dir / "long.bin"); }, cc::ErrorKind::kCorruptInput, {"long.bin", "4 bytes after"});
  }
  SECTION("implausible header") {
    std::string bad = bytes;
    const std::int32_t zero = 0;
    std::memcpy(bad.data() + 8, &zero, 4);  // n_layers
    std::ofstream(dir / "zero.bin", std::ios::binary) << bad;
    cc::testing::expect_error([&] { cc::load_model(dir / "zero.bin"); }, cc::ErrorKind::kCorruptInput, {"zero.bin", "n_layers"});
  }
  SECTION("vocab size INT_MIN (fuzzer finding: negating it was undefined behaviour)") {
    std::string bad = bytes;
    const std::int32_t int_min = std::numeric_limits<std::int32_t>::min();
    std::memcpy(bad.data() + 20, &int_min, 4);  // vocab_size
    std::ofstream(dir / "intmin.bin", std::ios::binary) << bad;
    cc::testing::expect_error([&] { cc::load_model(dir / "intmin.bin"); }, cc::ErrorKind::kCorruptInput, {"intmin.bin", "vocab_size"});
  }
  SECTION("a header whose sizes imply terabytes (fuzzer finding: allocated before checking the file)") {
    std::string bad(28 + 64, '\0');
    const std::int32_t header[7] = {1 << 22, 12, 1 << 21, 2, 1, 1 << 23, 16};  // each plausible alone
    std::memcpy(bad.data(), header, sizeof header);
    std::ofstream(dir / "huge.bin", std::ios::binary) << bad;
    cc::testing::expect_error([&] { cc::load_model(dir / "huge.bin"); }, cc::ErrorKind::kCorruptInput, {"huge.bin", "truncated"});
  }
  SECTION("unknown version") {
    std::string bad(256, '\0');
    const std::uint32_t magic = 0x616b3432;
    const std::int32_t version = 3;
    std::memcpy(bad.data(), &magic, 4);
    std::memcpy(bad.data() + 4, &version, 4);
    std::ofstream(dir / "v3.bin", std::ios::binary) << bad;
    cc::testing::expect_error([&] { cc::load_model(dir / "v3.bin"); }, cc::ErrorKind::kUnsupported, {"v3.bin", "version 3"});
  }
}
