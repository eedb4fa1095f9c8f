#include "support/thread_ranks.h"

#include <exception>
#include <thread>

#include <ATen/ATen.h>

namespace cushioncache::testing {

class ThreadRank : public ProcessGroup {
 public:
  ThreadRank(ThreadRanks& ranks, int rank) : ranks_(ranks), rank_(rank) {}
  int rank() const override { return rank_; }
  int world_size() const override { return ranks_.world_; }
  void all_reduce(at::Tensor& values, ReduceOp op, const std::string&) override { ranks_.all_reduce(values, op); }

 private:
  ThreadRanks& ranks_;
  int rank_;
};

std::unique_ptr<ProcessGroup> ThreadRanks::rank(int r) { return std::make_unique<ThreadRank>(*this, r); }

void ThreadRanks::all_reduce(at::Tensor& values, ReduceOp op) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (arrived_ == 0) {
    accumulated_ = values.clone();
  } else if (op == ReduceOp::kSum) {
    accumulated_.add_(values);
  } else {
    accumulated_ = op == ReduceOp::kMin ? at::minimum(accumulated_, values) : at::maximum(accumulated_, values);
  }
  if (++arrived_ == world_) {
    // Every rank copies this generation's result before any can start the next one.
    result_ = accumulated_;
    arrived_ = 0;
    ++generation_;
    changed_.notify_all();
  } else {
    const std::uint64_t mine = generation_;
    changed_.wait(lock, [&] { return generation_ != mine; });
  }
  values.copy_(result_);
}

void ThreadRanks::run(const std::function<void(int)>& body) {
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(world_));
  std::vector<std::thread> threads;
  for (int r = 0; r < world_; ++r)
    threads.emplace_back([&, r] {
      try {
        body(r);
      } catch (...) {
        errors[static_cast<std::size_t>(r)] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace cushioncache::testing
