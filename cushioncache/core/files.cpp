#include "cushioncache/core/files.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cushioncache/core/error.h"

namespace cushioncache {
namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_error(ErrorKind::kNotFound, "cannot open {}: {}", path.string(), std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw_error(ErrorKind::kCorruptInput, "error while reading {}", path.string());
  return buffer.str();
}

std::shared_ptr<const MappedFile> MappedFile::open(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_error(ErrorKind::kNotFound, "cannot open {}: {}", path.string(), std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw_error(ErrorKind::kNotFound, "{} is not a regular file", path.string());
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  const std::uint8_t* data = nullptr;
  if (size > 0) {
    void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      throw_error(ErrorKind::kNotFound, "cannot memory-map {}: {}", path.string(), std::strerror(err));
    }
    data = static_cast<const std::uint8_t*>(addr);
  }
  ::close(fd);  // the mapping stays valid without the descriptor
  return std::shared_ptr<const MappedFile>(new MappedFile(path, data, size));
}

MappedFile::MappedFile(fs::path path, const std::uint8_t* data, std::size_t size)
    : path_(std::move(path)), data_(data), size_(size) {}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::uint8_t*>(data_), size_);
}

void write_file_atomically(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  const fs::path folder = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::string temp_template = (folder / ("." + path.filename().string() + ".tmp.XXXXXX")).string();
  int fd = ::mkstemp(temp_template.data());
  if (fd < 0) throw_error(ErrorKind::kNotFound, "cannot create a temporary file in {}: {}", folder.string(), std::strerror(errno));
  ::close(fd);
  const fs::path temp(temp_template);
  try {
    {
      std::ofstream out(temp, std::ios::binary | std::ios::trunc);
      if (!out) throw_error(ErrorKind::kNotFound, "cannot write {}", temp.string());
      write(out);
      out.flush();
      if (!out) throw_error(ErrorKind::kNotFound, "error while writing {} (disk full?)", temp.string());
    }
    int sync_fd = ::open(temp.c_str(), O_RDONLY | O_CLOEXEC);
    if (sync_fd >= 0) {
      ::fsync(sync_fd);
      ::close(sync_fd);
    }
    ::chmod(temp.c_str(), 0644);  // mkstemp creates 0600; outputs are meant to be shared
    fs::rename(temp, path);
  } catch (...) {
    std::error_code ignored;
    fs::remove(temp, ignored);
    throw;
  }
}

void prepare_output_folder(const fs::path& folder, std::string_view what) {
  std::error_code ec;
  if (!folder.empty() && !fs::is_directory(folder, ec)) {
    fs::create_directories(folder, ec);
    if (ec) throw_error(ErrorKind::kNotFound, "{} {}: cannot create the folder: {}", what, folder.string(), ec.message());
  }
  const fs::path where = folder.empty() ? fs::path(".") : folder;
  std::string probe = (where / ".cushioncache-write-test.XXXXXX").string();
  const int fd = ::mkstemp(probe.data());
  if (fd < 0) throw_error(ErrorKind::kNotFound, "{} {}: cannot write in this folder: {}", what, where.string(), std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

void prepare_output_file(const fs::path& file, std::string_view what) {
  std::error_code ec;
  if (fs::is_directory(file, ec)) throw_error(ErrorKind::kNotFound, "{} {}: is a folder, not a file", what, file.string());
  prepare_output_folder(file.parent_path(), what);
}

}  // namespace cushioncache
