// A small GGUF writer for tests and fuzz seeds: every metadata type (arrays of arrays too),
// tensors of any ggml type from raw block bytes, and knobs that make bad files on purpose
// (duplicate keys, raw value types, tensor offsets that are misaligned, overlapping or past
// the end). It follows the GGUF spec, not our reader, so the reader is tested against it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cushioncache/io/gguf.h"

namespace cushioncache::testing {

// Little-endian encodings, for hand-made headers.
std::string le_u32(std::uint32_t v);
std::string le_u64(std::uint64_t v);
std::string gguf_string(const std::string& s);  // u64 length + bytes

// A metadata value already encoded: its type number and the bytes that follow the type.
struct GgufValue {
  std::uint32_t type = 0;
  std::string payload;

  static GgufValue u8(std::uint8_t v);
  static GgufValue i8(std::int8_t v);
  static GgufValue u16(std::uint16_t v);
  static GgufValue i16(std::int16_t v);
  static GgufValue u32(std::uint32_t v);
  static GgufValue i32(std::int32_t v);
  static GgufValue u64(std::uint64_t v);
  static GgufValue i64(std::int64_t v);
  static GgufValue f32(float v);
  static GgufValue f64(double v);
  static GgufValue boolean(bool v);
  static GgufValue string(const std::string& v);
  // Every item must have `element` type (nested arrays may differ in their own element type).
  static GgufValue array(GgufValueType element, const std::vector<GgufValue>& items);
  static GgufValue strings(const std::vector<std::string>& items);
  // Any type number and payload, for corrupt files.
  static GgufValue raw(std::uint32_t type, std::string payload);
};

struct GgufTensorSpec {
  std::string name;
  std::vector<std::uint64_t> ne;  // ggml order: ne[0] is the contiguous (row) dimension
  std::uint32_t type = 0;         // a GgmlType value, or any number
  std::string data;               // the stored bytes
  std::optional<std::uint64_t> offset;  // written instead of the natural offset when set
};

class GgufWriter {
 public:
  std::uint32_t version = 3;
  // Where tensor data is placed; set general.alignment yourself (set_alignment does both).
  std::uint64_t alignment = 32;

  void add(const std::string& key, GgufValue value);  // duplicates are kept, in order
  void set_alignment(std::uint32_t alignment);
  void add_tensor(GgufTensorSpec tensor);
  // A float32 tensor of PyTorch-order `shape` (written as ne reversed).
  void add_f32_tensor(const std::string& name, const std::vector<std::int64_t>& shape, const std::vector<float>& values);

  std::string bytes() const;  // the whole file
  void write(const std::filesystem::path& path) const;

 private:
  std::vector<std::pair<std::string, GgufValue>> kvs_;
  std::vector<GgufTensorSpec> tensors_;
};

// A small valid file: every metadata type, nested arrays, an F32, an F16 and a Q8_0 tensor.
GgufWriter sample_gguf();

}  // namespace cushioncache::testing
