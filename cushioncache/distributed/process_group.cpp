#include "cushioncache/distributed/process_group.h"

#include <cstdlib>
#include <exception>

#include <ATen/ATen.h>

#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"

#if defined(CC_HAVE_GLOO) || defined(CC_HAVE_NCCL)
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef CC_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef CC_HAVE_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace cushioncache {
namespace {

class SingleProcessGroup : public ProcessGroup {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_reduce(at::Tensor&, ReduceOp, const std::string&) override {}
};

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

#if defined(CC_HAVE_GLOO) || defined(CC_HAVE_NCCL)
// c10's errors carry a backtrace after the first line; the first line says what happened.
std::string first_line(const char* what) {
  const std::string text = what;
  return text.substr(0, text.find('\n'));
}

c10d::ReduceOp c10d_op(ReduceOp op) {
  return op == ReduceOp::kSum ? c10d::ReduceOp::SUM : op == ReduceOp::kMin ? c10d::ReduceOp::MIN : c10d::ReduceOp::MAX;
}

// Where the ranks meet: rank 0 serves the store, every rank waits for all of them.
c10::intrusive_ptr<c10d::Store> join_store(const std::string& address, int port, int rank, int world, std::chrono::seconds timeout) {
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<std::uint16_t>(port);
  store_options.isServer = rank == 0;
  store_options.numWorkers = world;
  store_options.waitWorkers = true;
  store_options.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(address, store_options);
}

[[noreturn]] void fail_to_join(const std::exception& e, const std::string& address, int port, int rank, int world,
                               std::chrono::seconds timeout) {
  throw_error(ErrorKind::kInterrupted, "rank {} of {}: could not join the group at {}:{} within {} s: {}", rank, world, address, port,
              timeout.count(), first_line(e.what()));
}

[[noreturn]] void fail_collective(const std::exception& e, int rank, int world, const std::string& what) {
  throw_error(ErrorKind::kInterrupted, "rank {} of {}: {} failed (another rank stopped or timed out): {}", rank, world, what,
              first_line(e.what()));
}
#endif

#ifdef CC_HAVE_GLOO
class GlooProcessGroup : public ProcessGroup {
 public:
  GlooProcessGroup(const std::string& address, int port, int rank, int world, std::chrono::seconds timeout) : rank_(rank), world_(world) {
    auto options = c10d::ProcessGroupGloo::Options::create();
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(address));
    options->timeout = timeout;
    try {
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(join_store(address, port, rank, world, timeout), rank, world, options);
    } catch (const std::exception& e) {
      fail_to_join(e, address, port, rank, world, timeout);
    }
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

  void all_reduce(at::Tensor& values, ReduceOp op, const std::string& what) override {
    c10d::AllreduceOptions options;
    options.reduceOp = c10d_op(op);
    std::vector<at::Tensor> tensors = {values};
    try {
      group_->allreduce(tensors, options)->wait();
    } catch (const std::exception& e) {
      fail_collective(e, rank_, world_, what);
    }
  }

 private:
  int rank_, world_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};
#endif

#ifdef CC_HAVE_NCCL
// NCCL reduces device memory only: the host values go to the rank's GPU and back (a few
// numbers per step, so the copies cost nothing next to the forward passes).
class NcclProcessGroup : public ProcessGroup {
 public:
  NcclProcessGroup(const std::string& address, int port, int rank, int world, std::chrono::seconds timeout, c10::Device device)
      // "cuda" without an index (no LOCAL_RANK): the current device, as ATen would take.
      : rank_(rank), world_(world), device_(device.has_index() ? device : c10::Device(c10::kCUDA, c10::cuda::current_device())) {
    // Blocking wait makes wait() throw once the timeout passes (a peer that died), where
    // the default lets the watchdog thread abort the whole process.
    setenv("TORCH_NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    try {
      const c10::cuda::CUDAGuard on_device(device_);
      group_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(join_store(address, port, rank, world, timeout), rank, world, options);
    } catch (const std::exception& e) {
      fail_to_join(e, address, port, rank, world, timeout);
    }
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

  void all_reduce(at::Tensor& values, ReduceOp op, const std::string& what) override {
    c10d::AllreduceOptions options;
    options.reduceOp = c10d_op(op);
    try {
      const c10::cuda::CUDAGuard on_device(device_);
      std::vector<at::Tensor> tensors = {values.to(device_)};
      group_->allreduce(tensors, options)->wait();
      values.copy_(tensors[0]);  // to the host: synchronises with the collective's stream
    } catch (const std::exception& e) {
      fail_collective(e, rank_, world_, what);
    }
  }

 private:
  int rank_, world_;
  c10::Device device_;
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> group_;
};
#endif

// Why `backend` cannot run on `device` in this build or on this machine; empty when it can.
std::string unavailable_reason(DistBackend backend, const c10::Device& device) {
  if (backend == DistBackend::kGloo) {
#ifdef CC_HAVE_GLOO
    return "";
#else
    return "this build has no Gloo process group: its LibTorch came without Gloo's headers (PyTorch's wheel ships none; Debian: "
           "install libgloo-dev and reconfigure); on GPUs use --dist-backend nccl";
#endif
  }
#ifdef CC_HAVE_NCCL
  if (!device.is_cuda())
    return fmt::format("NCCL reduces between GPUs, and this rank's device is {} (use --device cuda, or --dist-backend gloo)", device.str());
  const int gpus = c10::cuda::device_count();
  if (gpus == 0) return "NCCL needs a GPU, and this machine has none visible (no CUDA device or driver)";
  if (device.has_index() && device.index() >= gpus)
    return fmt::format("this rank's device is {}, but the machine has {} GPU{}", device.str(), gpus, gpus == 1 ? "" : "s");
  return "";
#else
  (void)device;
  return "this build has no NCCL process group: it needs a CUDA-enabled LibTorch (scripts/build.sh --torch pip builds against "
         "PyTorch's)";
#endif
}

}  // namespace

std::unique_ptr<ProcessGroup> single_process_group() { return std::make_unique<SingleProcessGroup>(); }

c10::Device device_for_rank(c10::Device requested) {
  if (!requested.is_cuda() || requested.has_index() || environment("LOCAL_RANK", "").empty()) return requested;
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(environment_integer("LOCAL_RANK", "", 0, 127)));
}

DistBackend parse_dist_backend(const std::string& text) {
  if (text == "auto") return DistBackend::kAuto;
  if (text == "gloo") return DistBackend::kGloo;
  if (text == "nccl") return DistBackend::kNccl;
  throw_error(ErrorKind::kInvalidArgument, "unknown distributed backend '{}': expected auto, gloo or nccl", text);
}

const char* to_string(DistBackend backend) {
  switch (backend) {
    case DistBackend::kAuto: return "auto";
    case DistBackend::kGloo: return "gloo";
    case DistBackend::kNccl: return "nccl";
  }
  return "?";
}

bool gloo_available() {
#ifdef CC_HAVE_GLOO
  return true;
#else
  return false;
#endif
}

bool nccl_available() {
#ifdef CC_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

bool multi_process_available() { return gloo_available() || nccl_available(); }

std::unique_ptr<ProcessGroup> process_group_from_environment(std::chrono::seconds timeout, DistBackend backend, c10::Device device) {
  const auto world = environment_integer("WORLD_SIZE", "1", 1, 1 << 16);
  if (world == 1) return single_process_group();
  const auto rank = environment_integer("RANK", "", 0, world - 1);
  const std::string address = environment("MASTER_ADDR", "127.0.0.1");
  const auto port = environment_integer("MASTER_PORT", "29500", 1, 65535);
  if (backend == DistBackend::kAuto)
    backend = device.is_cuda() && unavailable_reason(DistBackend::kNccl, device).empty() ? DistBackend::kNccl : DistBackend::kGloo;
  // Checked before joining, so that a rank that cannot run fails at once instead of
  // leaving its peers to time out.
  const std::string reason = unavailable_reason(backend, device);
  if (!reason.empty())
    throw_error(ErrorKind::kUnsupported, "WORLD_SIZE={} asks for {} processes over {}, but {}", world, world, to_string(backend), reason);
  log::info("rank {} of {}: joining the group at {}:{} ({})", rank, world, address, port, to_string(backend));
#ifdef CC_HAVE_NCCL
  if (backend == DistBackend::kNccl)
    return std::make_unique<NcclProcessGroup>(address, static_cast<int>(port), static_cast<int>(rank), static_cast<int>(world), timeout,
                                              device);
#endif
#ifdef CC_HAVE_GLOO
  return std::make_unique<GlooProcessGroup>(address, static_cast<int>(port), static_cast<int>(rank), static_cast<int>(world), timeout);
#else
  (void)timeout;
  throw_error(ErrorKind::kInternal, "no process group for {}", to_string(backend));  // unavailable_reason said otherwise
#endif
}

}  // namespace cushioncache
