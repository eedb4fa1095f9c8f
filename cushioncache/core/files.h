// File access shared by every reader and writer: whole-file reads, read-only memory
// maps (checkpoints are read in place), and atomic writes (a reader never sees a
// half-written file, and a crash leaves the previous version intact).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

namespace cushioncache {

// Reads a whole file; throws kNotFound (naming the path) if it cannot be opened.
std::string read_file(const std::filesystem::path& path);

// A memory map of a whole file, private and copy-on-write: what is written through it
// (a tensor viewing the file, changed in place) stays in this process and never reaches
// the file. Shared ownership lets tensors that view the mapping keep it alive.
class MappedFile {
 public:
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile(std::filesystem::path path, const std::uint8_t* data, std::size_t size);
  std::filesystem::path path_;
  const std::uint8_t* data_;
  std::size_t size_;
};

// Writes `path` through a temporary file in the same folder, flushed to disk and then
// renamed into place. If `write` throws, the temporary file is removed and any
// existing file at `path` is untouched.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::ostream&)>& write);

// Before any work: creates `folder` (and its parents) if missing and checks that a file
// can be written in it; throws kNotFound naming `what` (e.g. "--out") and the folder
// otherwise. An output that cannot be written then fails in a second, not after an hour.
void prepare_output_folder(const std::filesystem::path& folder, std::string_view what);

// The same for the folder a file will be written to; also refuses a path that is a folder.
void prepare_output_file(const std::filesystem::path& file, std::string_view what);

}  // namespace cushioncache
