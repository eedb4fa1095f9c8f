// GGUF: llama.cpp's single-file model format (versions 2 and 3). A header of typed
// key/value metadata (architecture, sizes, the tokenizer's vocabulary), tensor infos,
// then the tensors' data, each block-quantized in one of ggml's types. The reader
// memory-maps the file and checks every count, length and offset against the file's
// size before anything is allocated; tensors are dequantized to float32 on request.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

namespace cushioncache {

class MappedFile;

// ggml's tensor types, with ggml's numbering (ggml.h's enum ggml_type).
enum class GgmlType : std::uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};

// "Q4_K", or "type 17" for a number this library does not know.
std::string ggml_type_name(std::uint32_t type);

// How a ggml type lays out its data: `block_elements` values in `block_bytes` bytes. Null
// for types this library cannot dequantize (they are named in the error when loaded).
struct GgmlTypeTraits {
  GgmlType type;
  const char* name;
  std::int64_t block_elements;
  std::int64_t block_bytes;
};
const GgmlTypeTraits* ggml_type_traits(std::uint32_t type);

// The type of a metadata value, with GGUF's numbering (gguf_type).
enum class GgufValueType : std::uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

struct GgufTensorInfo {
  std::string name;
  // In PyTorch's order, outermost first: GGUF stores ne[0] (the contiguous dimension)
  // first, so a [rows, cols] weight is stored as ne = {cols, rows}.
  std::vector<std::int64_t> shape;
  std::uint32_t type = 0;      // a GgmlType's value (possibly one we cannot dequantize)
  std::uint64_t offset = 0;    // from the start of the data section
  std::uint64_t bytes = 0;     // of stored data
  std::int64_t numel() const;
};

class GgufFile {
 public:
  // Maps the file and validates the header, every metadata value and every tensor info:
  // magic, version (2 or 3), counts and string/array lengths within the file, known value
  // types, tensor data inside the file, aligned (general.alignment, default 32) and not
  // overlapping, row lengths a multiple of the type's block. Throws kNotFound /
  // kCorruptInput naming the file and the key or tensor at fault.
  static GgufFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const;
  std::uint32_t version() const { return version_; }

  // Every key/value pair: integers as JSON integers, floats as doubles, bools, strings,
  // arrays as JSON arrays (of arrays). The original value type is value_type(key).
  const nlohmann::json& metadata() const { return *metadata_; }
  bool has(const std::string& key) const;
  GgufValueType value_type(const std::string& key) const;  // kNotFound if absent
  // Typed access; kCorruptInput naming the key when it is missing or of another type.
  std::string required_string(const std::string& key) const;
  std::int64_t required_int(const std::string& key) const;
  std::optional<std::int64_t> optional_int(const std::string& key) const;
  std::optional<double> optional_float(const std::string& key) const;
  std::optional<bool> optional_bool(const std::string& key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const;
  const GgufTensorInfo& tensor(const std::string& name) const;  // kNotFound naming it

  // The tensor dequantized to a float32 CPU tensor of tensor(name).shape. kUnsupported
  // naming the tensor and its type for types with no dequantizer here.
  at::Tensor dequantize(const std::string& name) const;
  // The stored bytes of a tensor (for tests and the reference check).
  const std::uint8_t* raw_data(const std::string& name) const;

 private:
  std::shared_ptr<const MappedFile> file_;
  std::uint32_t version_ = 0;
  std::uint64_t data_start_ = 0;
  std::shared_ptr<const nlohmann::json> metadata_;
  std::map<std::string, GgufValueType> value_types_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, std::size_t> tensor_index_;
};

// Dequantizes `count` values of `type` stored at `data` into `out` (count a multiple of
// the type's block). kUnsupported for types without a dequantizer.
void dequantize_ggml(std::uint32_t type, const std::uint8_t* data, std::int64_t count, float* out);

// Whether `path` starts with the GGUF magic (cheap: reads 4 bytes).
bool is_gguf_file(const std::filesystem::path& path);

}  // namespace cushioncache
