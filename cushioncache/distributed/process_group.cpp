#include "cushioncache/distributed/process_group.h"

#include <cstdlib>
#include <exception>

#include <ATen/ATen.h>

#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"

#ifdef CC_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace cushioncache {
namespace {

class SingleProcessGroup : public ProcessGroup {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_reduce(at::Tensor&, ReduceOp, const std::string&) override {}
};

// c10's errors carry a backtrace after the first line; the first line says what happened.
std::string first_line(const char* what) {
  const std::string text = what;
  return text.substr(0, text.find('\n'));
}

std::string environment(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

std::int64_t environment_integer(const char* name, const std::string& fallback, std::int64_t low, std::int64_t high) {
  const std::string text = environment(name, fallback);
  std::size_t used = 0;
  std::int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size() || value < low || value > high)
    throw_error(ErrorKind::kInvalidConfig, "environment variable {}='{}' must be an integer in [{}, {}]", name, text, low, high);
  return value;
}

#ifdef CC_HAVE_GLOO
class GlooProcessGroup : public ProcessGroup {
 public:
  GlooProcessGroup(const std::string& address, int port, int rank, int world, std::chrono::seconds timeout) : rank_(rank), world_(world) {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<std::uint16_t>(port);
    store_options.isServer = rank == 0;
    store_options.numWorkers = world;
    store_options.waitWorkers = true;
    store_options.timeout = timeout;
    auto options = c10d::ProcessGroupGloo::Options::create();
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(address));
    options->timeout = timeout;
    try {
      auto store = c10::make_intrusive<c10d::TCPStore>(address, store_options);
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options);
    } catch (const std::exception& e) {
      throw_error(ErrorKind::kInterrupted, "rank {} of {}: could not join the group at {}:{} within {} s: {}", rank, world, address, port,
                  timeout.count(), first_line(e.what()));
    }
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

  void all_reduce(at::Tensor& values, ReduceOp op, const std::string& what) override {
    c10d::AllreduceOptions options;
    options.reduceOp = op == ReduceOp::kSum ? c10d::ReduceOp::SUM : op == ReduceOp::kMin ? c10d::ReduceOp::MIN : c10d::ReduceOp::MAX;
    std::vector<at::Tensor> tensors = {values};
    try {
      group_->allreduce(tensors, options)->wait();
    } catch (const std::exception& e) {
      throw_error(ErrorKind::kInterrupted, "rank {} of {}: {} failed (another rank stopped or timed out): {}", rank_, world_, what,
                  first_line(e.what()));
    }
  }

 private:
  int rank_, world_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};
#endif

}  // namespace

std::unique_ptr<ProcessGroup> single_process_group() { return std::make_unique<SingleProcessGroup>(); }

c10::Device device_for_rank(c10::Device requested) {
  if (!requested.is_cuda() || requested.has_index() || environment("LOCAL_RANK", "").empty()) return requested;
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(environment_integer("LOCAL_RANK", "", 0, 127)));
}

bool multi_process_available() {
#ifdef CC_HAVE_GLOO
  return true;
#else
  return false;
#endif
}

std::unique_ptr<ProcessGroup> process_group_from_environment(std::chrono::seconds timeout) {
  const auto world = environment_integer("WORLD_SIZE", "1", 1, 1 << 16);
  if (world == 1) return single_process_group();
  const auto rank = environment_integer("RANK", "", 0, world - 1);
  const std::string address = environment("MASTER_ADDR", "127.0.0.1");
  const auto port = environment_integer("MASTER_PORT", "29500", 1, 65535);
#ifdef CC_HAVE_GLOO
  log::info("rank {} of {}: joining the group at {}:{}", rank, world, address, port);
  return std::make_unique<GlooProcessGroup>(address, static_cast<int>(port), static_cast<int>(rank), static_cast<int>(world), timeout);
#else
  (void)timeout;
  throw_error(ErrorKind::kUnsupported, "WORLD_SIZE={} asks for {} processes, but this build has no Gloo process group "
              "(install libgloo-dev and reconfigure)", world, world);
#endif
}

}  // namespace cushioncache
