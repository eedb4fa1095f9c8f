#include "cushioncache/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <ostream>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/core/files.h"
#include "cushioncache/io/json_file.h"

namespace cushioncache {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The safetensors spec caps the header at 100 MB; a larger length is a corrupt file,
// not a reason to allocate.
constexpr std::uint64_t kMaxHeaderBytes = 100ull << 20;

struct DtypeInfo {
  const char* name;
  int bytes;
  c10::ScalarType scalar_type;
  bool representable;  // this LibTorch has a matching ScalarType
};

const DtypeInfo kDtypes[] = {
    {"BOOL", 1, at::kBool, true},   {"U8", 1, at::kByte, true},     {"I8", 1, at::kChar, true},
    {"I16", 2, at::kShort, true},   {"I32", 4, at::kInt, true},     {"I64", 8, at::kLong, true},
    {"F16", 2, at::kHalf, true},    {"BF16", 2, at::kBFloat16, true}, {"F32", 4, at::kFloat, true},
    {"F64", 8, at::kDouble, true},
    // Valid safetensors dtypes that LibTorch 1.13 cannot hold; sizes are still checked.
    {"U16", 2, at::kShort, false},  {"U32", 4, at::kInt, false},    {"U64", 8, at::kLong, false},
    {"F8_E4M3", 1, at::kByte, false}, {"F8_E5M2", 1, at::kByte, false},
};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeInfo& dtype_for(c10::ScalarType type) {
  for (const auto& d : kDtypes)
    if (d.representable && d.scalar_type == type) return d;
  throw_error(ErrorKind::kUnsupported, "dtype {} cannot be stored in safetensors", c10::toString(type));
}

std::uint64_t read_u64_le(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

SafetensorsEntry parse_entry(const std::string& name, const json& value, std::uint64_t data_size) {
  if (!value.is_object()) throw_error(ErrorKind::kCorruptInput, "tensor '{}': header entry is not an object", name);
  SafetensorsEntry e;
  e.name = name;
  auto dtype = value.find("dtype");
  auto shape = value.find("shape");
  auto offsets = value.find("data_offsets");
  if (dtype == value.end() || !dtype->is_string())
    throw_error(ErrorKind::kCorruptInput, "tensor '{}': missing or non-string 'dtype'", name);
  if (shape == value.end() || !shape->is_array())
    throw_error(ErrorKind::kCorruptInput, "tensor '{}': missing or non-array 'shape'", name);
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2)
    throw_error(ErrorKind::kCorruptInput, "tensor '{}': 'data_offsets' must be [begin, end]", name);
  e.dtype = dtype->get<std::string>();
  const DtypeInfo* info = find_dtype(e.dtype);
  if (info == nullptr) throw_error(ErrorKind::kCorruptInput, "tensor '{}': unknown dtype '{}'", name, e.dtype);

  std::uint64_t numel = 1;
  for (const auto& dim : *shape) {
    if (!dim.is_number_unsigned()) throw_error(ErrorKind::kCorruptInput, "tensor '{}': shape entries must be non-negative integers", name);
    const auto d = dim.get<std::uint64_t>();
    if (d > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
        (d != 0 && numel > std::numeric_limits<std::uint64_t>::max() / d))
      throw_error(ErrorKind::kCorruptInput, "tensor '{}': shape overflows", name);
    numel *= d;
    e.shape.push_back(static_cast<std::int64_t>(d));
  }
  for (const auto& o : *offsets)
    if (!o.is_number_unsigned()) throw_error(ErrorKind::kCorruptInput, "tensor '{}': data_offsets must be non-negative integers", name);
  e.begin = (*offsets)[0].get<std::uint64_t>();
  e.end = (*offsets)[1].get<std::uint64_t>();
  if (e.begin > e.end) throw_error(ErrorKind::kCorruptInput, "tensor '{}': data_offsets [{}, {}] are reversed", name, e.begin, e.end);
  if (e.end > data_size)
    throw_error(ErrorKind::kCorruptInput, "tensor '{}': data_offsets end {} is past the data area ({} bytes)", name, e.end, data_size);
  if (numel > std::numeric_limits<std::uint64_t>::max() / static_cast<std::uint64_t>(info->bytes) ||
      numel * static_cast<std::uint64_t>(info->bytes) != e.end - e.begin)
    throw_error(ErrorKind::kCorruptInput, "tensor '{}': shape {} of {} needs {} bytes but data_offsets span {}", name,
                shape->dump(), e.dtype, numel * static_cast<std::uint64_t>(info->bytes), e.end - e.begin);
  return e;
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const fs::path& path) {
  return with_context(path.string(), [&] {
    SafetensorsFile result;
    result.file_ = MappedFile::open(path);
    const std::uint64_t size = result.file_->size();
    if (size < 8) throw_error(ErrorKind::kCorruptInput, "file is {} bytes, too short for the 8-byte header length", size);
    const std::uint64_t header_len = read_u64_le(result.file_->data());
    if (header_len > size - 8)
      throw_error(ErrorKind::kCorruptInput, "header length {} runs past the end of the file ({} bytes)", header_len, size);
    if (header_len > kMaxHeaderBytes)
      throw_error(ErrorKind::kCorruptInput, "header length {} exceeds the 100 MB limit of the format", header_len);
    result.data_start_ = 8 + header_len;
    const std::uint64_t data_size = size - result.data_start_;

    json header;
    try {
      header = json::parse(result.file_->data() + 8, result.file_->data() + 8 + header_len);
    } catch (const json::exception& e) {
      throw_error(ErrorKind::kCorruptInput, "header is not valid JSON: {}", e.what());
    }
    if (!header.is_object()) throw_error(ErrorKind::kCorruptInput, "header is not a JSON object");

    for (const auto& [key, value] : header.items()) {
      if (key == "__metadata__") {
        if (!value.is_object()) throw_error(ErrorKind::kCorruptInput, "__metadata__ is not an object");
        for (const auto& [mk, mv] : value.items()) {
          if (!mv.is_string()) throw_error(ErrorKind::kCorruptInput, "__metadata__ value '{}' is not a string", mk);
          result.metadata_[mk] = mv.get<std::string>();
        }
        continue;
      }
      result.entries_.emplace(key, parse_entry(key, value, data_size));
    }

    std::vector<const SafetensorsEntry*> by_offset;
    for (const auto& [name, e] : result.entries_)
      if (e.end > e.begin) by_offset.push_back(&e);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const SafetensorsEntry* a, const SafetensorsEntry* b) { return a->begin < b->begin; });
    for (std::size_t i = 1; i < by_offset.size(); ++i) {
      if (by_offset[i]->begin < by_offset[i - 1]->end)
        throw_error(ErrorKind::kCorruptInput, "tensors '{}' and '{}' overlap in the data area", by_offset[i - 1]->name,
                    by_offset[i]->name);
    }
    return result;
  });
}

const fs::path& SafetensorsFile::path() const { return file_->path(); }

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

bool SafetensorsFile::contains(const std::string& name) const { return entries_.count(name) != 0; }

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw_error(ErrorKind::kNotFound, "{}: no tensor named '{}'", path().string(), name);
  return it->second;
}

const std::string& SafetensorsFile::required_metadata(const std::string& key, std::string_view what) const {
  const auto it = metadata_.find(key);
  if (it == metadata_.end()) throw_error(ErrorKind::kCorruptInput, "not a {}: its metadata has no '{}'", what, key);
  return it->second;
}

at::Tensor SafetensorsFile::load(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  const DtypeInfo* info = find_dtype(e.dtype);
  if (!info->representable)
    throw_error(ErrorKind::kUnsupported, "{}: tensor '{}' has dtype {}, which this LibTorch cannot represent",
                path().string(), name, e.dtype);
  at::Tensor out = at::empty(e.shape, at::TensorOptions().dtype(info->scalar_type));
  if (e.end > e.begin) std::memcpy(out.data_ptr(), file_->data() + data_start_ + e.begin, e.end - e.begin);
  return out;
}

at::Tensor SafetensorsFile::view(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  const DtypeInfo* info = find_dtype(e.dtype);
  if (!info->representable) return load(name);  // load names the problem
  const std::uint8_t* data = file_->data() + data_start_ + e.begin;
  const auto element = static_cast<std::uintptr_t>(c10::elementSize(info->scalar_type));
  if (e.end == e.begin || reinterpret_cast<std::uintptr_t>(data) % element != 0) return load(name);
  // The mapping is copy-on-write (MappedFile), so a writable view cannot change the file.
  std::shared_ptr<const MappedFile> keep = file_;
  return at::from_blob(const_cast<std::uint8_t*>(data), e.shape, [keep](void*) {}, at::TensorOptions().dtype(info->scalar_type));
}

SafetensorsCheckpoint SafetensorsCheckpoint::open(const fs::path& file_index_or_folder) {
  SafetensorsCheckpoint ckpt;
  fs::path source = file_index_or_folder;
  if (fs::is_directory(source)) {
    if (fs::exists(source / "model.safetensors.index.json")) {
      source /= "model.safetensors.index.json";
    } else if (fs::exists(source / "model.safetensors")) {
      source /= "model.safetensors";
    } else {
      throw_error(ErrorKind::kNotFound, "{}: neither model.safetensors nor model.safetensors.index.json found "
                  "(PyTorch .bin checkpoints are not read: convert them to safetensors)", source.string());
    }
  }
  ckpt.source_ = source;
  const std::string filename = source.filename().string();
  const bool is_index = filename.size() > 5 && filename.compare(filename.size() - 5, 5, ".json") == 0;
  if (!is_index) {
    ckpt.files_.push_back(SafetensorsFile::open(source));
    for (const auto& name : ckpt.files_[0].names()) ckpt.file_index_[name] = 0;
    return ckpt;
  }

  const json index = read_json_file(source);
  with_json_context(source.string(), [&] {
    auto map = index.find("weight_map");
    if (map == index.end() || !map->is_object()) throw_error(ErrorKind::kCorruptInput, "missing object 'weight_map'");
    std::map<std::string, std::size_t> shard_slot;
    for (const auto& [tensor, shard] : map->items()) {
      if (!shard.is_string()) throw_error(ErrorKind::kCorruptInput, "weight_map['{}'] is not a file name", tensor);
      const auto shard_name = shard.get<std::string>();
      if (shard_name.find('/') != std::string::npos || shard_name == "..")
        throw_error(ErrorKind::kCorruptInput, "weight_map['{}'] = '{}' is not a file name in the model folder", tensor, shard_name);
      auto [it, inserted] = shard_slot.emplace(shard_name, ckpt.files_.size());
      if (inserted) ckpt.files_.push_back(SafetensorsFile::open(source.parent_path() / shard_name));
      if (!ckpt.files_[it->second].contains(tensor))
        throw_error(ErrorKind::kCorruptInput, "weight_map says '{}' is in {}, but that shard has no such tensor", tensor, shard_name);
      ckpt.file_index_[tensor] = it->second;
    }
  });
  return ckpt;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(file_index_.size());
  for (const auto& [name, slot] : file_index_) out.push_back(name);
  return out;
}

bool SafetensorsCheckpoint::contains(const std::string& name) const { return file_index_.count(name) != 0; }

const SafetensorsFile& SafetensorsCheckpoint::file_of(const std::string& name) const {
  auto it = file_index_.find(name);
  if (it == file_index_.end()) throw_error(ErrorKind::kNotFound, "{}: missing tensor '{}'", source_.string(), name);
  return files_[it->second];
}

const SafetensorsEntry& SafetensorsCheckpoint::entry(const std::string& name) const { return file_of(name).entry(name); }

at::Tensor SafetensorsCheckpoint::load(const std::string& name) const { return file_of(name).load(name); }

at::Tensor SafetensorsCheckpoint::view(const std::string& name) const { return file_of(name).view(name); }

void write_safetensors(const fs::path& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  with_context("writing " + path.string(), [&] {
    std::vector<std::pair<std::string, at::Tensor>> sorted;
    sorted.reserve(tensors.size());
    for (const auto& [name, t] : tensors) {
      if (name == "__metadata__") throw_error(ErrorKind::kInvalidArgument, "'__metadata__' is reserved, not a tensor name");
      if (!t.defined()) throw_error(ErrorKind::kInvalidArgument, "tensor '{}' is undefined", name);
      sorted.emplace_back(name, t.detach().to(at::kCPU).contiguous());
    }
    std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (std::size_t i = 1; i < sorted.size(); ++i)
      if (sorted[i].first == sorted[i - 1].first) throw_error(ErrorKind::kInvalidArgument, "tensor name '{}' appears twice", sorted[i].first);

    json header = json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::uint64_t offset = 0;
    for (const auto& [name, t] : sorted) {
      const std::uint64_t bytes = t.numel() * t.element_size();
      header[name] = {{"dtype", dtype_for(t.scalar_type()).name},
                      {"shape", t.sizes().vec()},
                      {"data_offsets", {offset, offset + bytes}}};
      offset += bytes;
    }
    std::string header_text = header.dump();
    header_text.append((8 - header_text.size() % 8) % 8, ' ');  // keeps the data area 8-byte aligned

    write_file_atomically(path, [&](std::ostream& out) {
      std::uint64_t len = header_text.size();
      unsigned char len_bytes[8];
      for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>((len >> (8 * i)) & 0xff);
      out.write(reinterpret_cast<const char*>(len_bytes), 8);
      out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));
      for (const auto& [name, t] : sorted)
        out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * t.element_size()));
    });
  });
}

}  // namespace cushioncache
