#include "cushioncache/core/optimizer_state.h"

#include <sstream>

#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>

#include "cushioncache/core/error.h"

namespace cushioncache {

std::string optimizer_state_bytes(const torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

void load_optimizer_state(torch::optim::Optimizer& optimizer, const std::string& bytes, c10::Device device, const std::string& source) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(bytes.data(), bytes.size(), device);
    optimizer.load(archive);
  } catch (const c10::Error& e) {
    // LibTorch's message runs on with a C++ backtrace: its first line says what failed.
    const std::string what = e.what();
    throw_error(ErrorKind::kCorruptInput, "{}: the optimizer state cannot be read ({})", source, what.substr(0, what.find('\n')));
  }
}

}  // namespace cushioncache
