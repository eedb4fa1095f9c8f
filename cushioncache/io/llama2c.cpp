#include "cushioncache/io/llama2c.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "cushioncache/core/error.h"
#include "cushioncache/core/files.h"

namespace cushioncache {
namespace {

constexpr std::uint32_t kMagic = 0x616b3432;  // "ak42"
constexpr std::size_t kVersionedHeaderBytes = 256;

std::int32_t read_i32(const std::uint8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void validate(const Llama2cHeader& h) {
  auto positive = [](const char* field, int v) {
    if (v <= 0 || v > (1 << 24)) throw_error(ErrorKind::kCorruptInput, "header field {} = {} is not a plausible size", field, v);
  };
  positive("dim", h.dim);
  positive("hidden_dim", h.hidden_dim);
  positive("n_layers", h.n_layers);
  positive("n_heads", h.n_heads);
  positive("n_kv_heads", h.n_kv_heads);
  positive("vocab_size", h.vocab_size);
  positive("seq_len", h.seq_len);
  if (h.dim % h.n_heads != 0) throw_error(ErrorKind::kCorruptInput, "dim {} is not divisible by n_heads {}", h.dim, h.n_heads);
  if (h.n_heads % h.n_kv_heads != 0)
    throw_error(ErrorKind::kCorruptInput, "n_heads {} is not divisible by n_kv_heads {}", h.n_heads, h.n_kv_heads);
  if ((h.dim / h.n_heads) % 2 != 0) throw_error(ErrorKind::kCorruptInput, "head size {} is odd; RoPE needs pairs", h.dim / h.n_heads);
}

// Sequential reader over the mapped payload that checks every read against the end.
class Cursor {
 public:
  Cursor(const MappedFile& file, std::size_t offset) : file_(file), offset_(offset) {}

  // Every read is checked against the file before its tensor is allocated: a header that
  // claims terabytes fails as truncated instead of as an allocation.
  at::Tensor f32(std::vector<std::int64_t> shape) {
    const auto bytes = static_cast<std::size_t>(count(shape)) * 4;
    const std::uint8_t* source = take(bytes);
    at::Tensor t = at::empty(shape, at::kFloat);
    std::memcpy(t.data_ptr<float>(), source, bytes);
    return t;
  }

  // Q8_0: int8 values, then one float32 scale per group of `group` values.
  at::Tensor q8_0(std::vector<std::int64_t> shape, int group) {
    const std::int64_t numel = count(shape);
    if (numel % group != 0) throw_error(ErrorKind::kCorruptInput, "tensor of {} values is not a multiple of group size {}", numel, group);
    const std::uint8_t* values = take(static_cast<std::size_t>(numel));
    const std::uint8_t* scales = take(static_cast<std::size_t>(numel / group) * 4);
    at::Tensor q = at::empty({numel / group, group}, at::kChar);
    std::memcpy(q.data_ptr<std::int8_t>(), values, static_cast<std::size_t>(numel));
    at::Tensor s = at::empty({numel / group, 1}, at::kFloat);
    std::memcpy(s.data_ptr<float>(), scales, static_cast<std::size_t>(numel / group) * 4);
    return (q.to(at::kFloat) * s).reshape(shape);
  }

  void skip(std::size_t bytes) { take(bytes); }
  std::size_t offset() const { return offset_; }

 private:
  static std::int64_t count(const std::vector<std::int64_t>& shape) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  const std::uint8_t* take(std::size_t bytes) {
    if (bytes > file_.size() - offset_)
      throw_error(ErrorKind::kCorruptInput, "file is {} bytes; the header implies more data (truncated?)", file_.size());
    const std::uint8_t* p = file_.data() + offset_;
    offset_ += bytes;
    return p;
  }
  const MappedFile& file_;
  std::size_t offset_;
};

std::string layer_name(int layer, const char* suffix) { return fmt::format("layers.{}.{}", layer, suffix); }

// The header at the start of `p` (at least 28 bytes, 256 for versioned files); returns
// where the tensors begin.
std::size_t parse_header(const std::uint8_t* p, std::size_t size, Llama2cHeader& h) {
  if (size < 28) throw_error(ErrorKind::kCorruptInput, "file is {} bytes, too short for a llama2.c header", size);
  std::size_t payload = 0;
  std::uint32_t magic;
  std::memcpy(&magic, p, 4);
  if (magic == kMagic) {
    if (size < kVersionedHeaderBytes) throw_error(ErrorKind::kCorruptInput, "versioned header is truncated");
    h.version = read_i32(p + 4);
    if (h.version != 1 && h.version != 2)
      throw_error(ErrorKind::kUnsupported, "llama2.c format version {} (only 1 = float32 and 2 = Q8_0 are known)", h.version);
    h.dim = read_i32(p + 8);
    h.hidden_dim = read_i32(p + 12);
    h.n_layers = read_i32(p + 16);
    h.n_heads = read_i32(p + 20);
    h.n_kv_heads = read_i32(p + 24);
    h.vocab_size = read_i32(p + 28);
    h.seq_len = read_i32(p + 32);
    h.shared_classifier = p[36] != 0;
    if (h.version == 2) {
      h.group_size = read_i32(p + 37);
      if (h.group_size <= 0) throw_error(ErrorKind::kCorruptInput, "group_size {} is not positive", h.group_size);
    }
    payload = kVersionedHeaderBytes;
  } else {
    h.version = 0;
    h.dim = read_i32(p);
    h.hidden_dim = read_i32(p + 4);
    h.n_layers = read_i32(p + 8);
    h.n_heads = read_i32(p + 12);
    h.n_kv_heads = read_i32(p + 16);
    h.vocab_size = read_i32(p + 20);
    h.seq_len = read_i32(p + 24);
    // The legacy format signals an unshared classifier with a negative vocab size.
    h.shared_classifier = h.vocab_size > 0;
    if (h.vocab_size < 0 && h.vocab_size != std::numeric_limits<std::int32_t>::min()) h.vocab_size = -h.vocab_size;  // validate() rejects INT_MIN
    payload = 28;
  }
  validate(h);
  return payload;
}

}  // namespace

Llama2cHeader read_llama2c_header(const std::filesystem::path& path) {
  return with_context(path.string(), [&] {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw_error(ErrorKind::kNotFound, "cannot open");
    std::uint8_t buffer[kVersionedHeaderBytes] = {};
    in.read(reinterpret_cast<char*>(buffer), sizeof(buffer));
    Llama2cHeader h;
    parse_header(buffer, static_cast<std::size_t>(in.gcount()), h);
    return h;
  });
}


Llama2cCheckpoint read_llama2c_checkpoint(const std::filesystem::path& path) {
  return with_context(path.string(), [&] {
    auto file = MappedFile::open(path);
    Llama2cCheckpoint ckpt;
    Llama2cHeader& h = ckpt.header;
    const std::size_t payload = parse_header(file->data(), file->size(), h);

    const std::int64_t dim = h.dim, hidden = h.hidden_dim, vocab = h.vocab_size, layers = h.n_layers;
    const std::int64_t head_size = dim / h.n_heads;
    const std::int64_t kv_dim = head_size * h.n_kv_heads;
    auto& t = ckpt.tensors;
    Cursor cur(*file, payload);

    // Per-layer tensors are stored as one block per kind, layer after layer.
    using Shape = std::vector<std::int64_t>;
    const std::vector<std::pair<const char*, Shape>> attention = {{"attention.wq.weight", {dim, dim}},
                                                                  {"attention.wk.weight", {kv_dim, dim}},
                                                                  {"attention.wv.weight", {kv_dim, dim}},
                                                                  {"attention.wo.weight", {dim, dim}}};
    const std::vector<std::pair<const char*, Shape>> feed_forward = {{"feed_forward.w1.weight", {hidden, dim}},
                                                                     {"feed_forward.w2.weight", {dim, hidden}},
                                                                     {"feed_forward.w3.weight", {hidden, dim}}};
    auto f32 = [&](const Shape& shape) { return cur.f32(shape); };
    // Version 2 stores the matrices as Q8_0 and only the norms in float32.
    auto matrix = [&](const Shape& shape) { return h.version == 2 ? cur.q8_0(shape, h.group_size) : cur.f32(shape); };
    auto per_layer = [&](const char* suffix, const Shape& shape, const std::function<at::Tensor(const Shape&)>& read) {
      for (int l = 0; l < layers; ++l) t[layer_name(l, suffix)] = read(shape);
    };

    if (h.version == 0) {
      t["tok_embeddings.weight"] = cur.f32({vocab, dim});
      per_layer("attention_norm.weight", {dim}, f32);
      for (const auto& [name, shape] : attention) per_layer(name, shape, f32);
      per_layer("ffn_norm.weight", {dim}, f32);
      for (const auto& [name, shape] : feed_forward) per_layer(name, shape, f32);
      t["norm.weight"] = cur.f32({dim});
      cur.skip(static_cast<std::size_t>(h.seq_len) * head_size * 4);  // precomputed RoPE cos/sin: recomputed by the model
      if (!h.shared_classifier) t["output.weight"] = cur.f32({vocab, dim});
    } else {
      per_layer("attention_norm.weight", {dim}, f32);
      per_layer("ffn_norm.weight", {dim}, f32);
      t["norm.weight"] = cur.f32({dim});
      t["tok_embeddings.weight"] = matrix({vocab, dim});
      for (const auto& [name, shape] : attention) per_layer(name, shape, matrix);
      for (const auto& [name, shape] : feed_forward) per_layer(name, shape, matrix);
      if (!h.shared_classifier) t["output.weight"] = matrix({vocab, dim});
    }
    if (cur.offset() != file->size())
      throw_error(ErrorKind::kCorruptInput, "file has {} bytes after the last tensor the header describes", file->size() - cur.offset());
    return ckpt;
  });
}

}  // namespace cushioncache
