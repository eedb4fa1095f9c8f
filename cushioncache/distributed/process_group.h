// The ranks of a multi-process job, for the few collectives the prefix search needs:
// LibTorch's own c10d process groups (Gloo over TCP, or NCCL between GPUs in a CUDA
// LibTorch build; no networking of our own), set up from the environment torchrun (or
// scripts/launch_ranks.sh) gives each process: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
// Joining and every collective have a timeout, so a rank that dies makes the others fail
// with an error naming the collective instead of hanging.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace cushioncache {

enum class ReduceOp { kSum, kMin, kMax };

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Reduces `values` (a CPU float64 tensor, the same shape on every rank) in place across
  // the ranks. `what` names the collective in errors. kInterrupted when a peer is gone or
  // the timeout passes.
  virtual void all_reduce(at::Tensor& values, ReduceOp op, const std::string& what) = 0;

  bool is_leader() const { return rank() == 0; }  // the rank that writes files
};

// The one-process group: collectives return their input.
std::unique_ptr<ProcessGroup> single_process_group();

// Which c10d backend carries the collectives (--dist-backend). kAuto: NCCL when the
// rank's device is a GPU and this build has NCCL, Gloo otherwise (the reduced values are
// host tensors, so Gloo serves GPU jobs too).
enum class DistBackend { kAuto, kGloo, kNccl };

// "auto", "gloo" or "nccl"; kInvalidArgument otherwise.
DistBackend parse_dist_backend(const std::string& text);
const char* to_string(DistBackend backend);

// The group the environment describes: WORLD_SIZE unset or 1 gives the one-process group;
// otherwise RANK, MASTER_ADDR (default 127.0.0.1) and MASTER_PORT (default 29500) are
// read, rank 0 serves the rendezvous store, and every rank waits for all of them (the
// store, then the connections: up to about twice `timeout`). `device` is the rank's
// device (device_for_rank), where NCCL reduces. kInvalidConfig naming the variable when
// one is malformed; kUnsupported, before anything is joined, when the backend cannot run
// here: Gloo without its headers at configure time (libgloo-dev; PyTorch's wheel has
// none), NCCL without a CUDA LibTorch, for a CPU device, or without a visible GPU.
std::unique_ptr<ProcessGroup> process_group_from_environment(std::chrono::seconds timeout = std::chrono::seconds(300),
                                                             DistBackend backend = DistBackend::kAuto,
                                                             c10::Device device = c10::Device(c10::kCPU));

// Whether this build can run multi-process jobs (over either backend).
bool multi_process_available();
// Whether this build has each backend (the NCCL group also needs a GPU at run time).
bool gloo_available();
bool nccl_available();

// The device this rank runs on: "cuda" without an index becomes cuda:LOCAL_RANK when
// LOCAL_RANK is set (as torchrun and scripts/launch_ranks.sh set it), so the ranks of one
// machine take one GPU each; any other device is returned as given. kInvalidConfig when
// LOCAL_RANK is not a non-negative integer.
c10::Device device_for_rank(c10::Device requested);

}  // namespace cushioncache
