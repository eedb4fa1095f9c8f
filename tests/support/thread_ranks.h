// Ranks as threads of one process, for testing code written against ProcessGroup without
// starting processes: all_reduce blocks until every rank has called it, like a collective.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "cushioncache/distributed/process_group.h"

namespace cushioncache::testing {

class ThreadRanks {
 public:
  explicit ThreadRanks(int world) : world_(world) {}
  // The ProcessGroup of one rank (valid while this object lives).
  std::unique_ptr<ProcessGroup> rank(int r);
  // Runs body(rank) on `world` threads and rethrows the first exception.
  void run(const std::function<void(int)>& body);

 private:
  friend class ThreadRank;
  void all_reduce(at::Tensor& values, ReduceOp op);

  int world_;
  std::mutex mutex_;
  std::condition_variable changed_;
  int arrived_ = 0;
  std::uint64_t generation_ = 0;
  at::Tensor accumulated_, result_;
};

}  // namespace cushioncache::testing
