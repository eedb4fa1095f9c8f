// safetensors: the Hugging Face tensor file (8-byte header length, JSON header, raw
// little-endian data). The reader memory-maps the file and validates the whole header
// before anything is read; the writer is atomic. Sharded checkpoints are read through
// their model.safetensors.index.json.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace cushioncache {

class MappedFile;

struct SafetensorsEntry {
  std::string name;
  std::string dtype;            // as stored: "F32", "BF16", ...
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;      // byte offsets relative to the start of the data area
  std::uint64_t end = 0;
};

class SafetensorsFile {
 public:
  // Maps the file and validates its header: length within the file, valid JSON, known
  // dtypes, shapes consistent with byte sizes, offsets inside the data area and not
  // overlapping. Throws kNotFound / kCorruptInput naming the file (and tensor).
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const;
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  const SafetensorsEntry& entry(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The metadata value under `key`; kCorruptInput "not a <what>: ..." when it is absent
  // (files of our own formats: artifacts, tuning checkpoints).
  const std::string& required_metadata(const std::string& key, std::string_view what) const;

  // A CPU tensor owning a copy of the stored data, in the stored dtype. Throws
  // kUnsupported for dtypes this LibTorch cannot represent (e.g. float8 on 1.13).
  at::Tensor load(const std::string& name) const;
  // The stored data without a copy: a CPU tensor viewing the memory map (pages are read
  // from disk when touched, and the map lives as long as the tensor). In-place changes
  // stay private to the process. A copy (load) when the data is not aligned for its dtype.
  at::Tensor view(const std::string& name) const;

 private:
  std::shared_ptr<const MappedFile> file_;
  std::uint64_t data_start_ = 0;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// The weights of one model: a single .safetensors file, or the shards listed in a
// model.safetensors.index.json. open() accepts either file or a model folder.
class SafetensorsCheckpoint {
 public:
  static SafetensorsCheckpoint open(const std::filesystem::path& file_index_or_folder);

  const std::filesystem::path& source() const { return source_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  const SafetensorsEntry& entry(const std::string& name) const;
  at::Tensor load(const std::string& name) const;
  at::Tensor view(const std::string& name) const;  // SafetensorsFile::view

 private:
  const SafetensorsFile& file_of(const std::string& name) const;
  std::filesystem::path source_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, std::size_t> file_index_;  // tensor name -> files_ slot
};

// Writes tensors (any device; copied to CPU) atomically. Names must be unique.
void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace cushioncache
