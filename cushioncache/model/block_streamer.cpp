#include "cushioncache/model/block_streamer.h"

#include <algorithm>
#include <numeric>
#include <thread>

#include <ATen/ATen.h>
#include <c10/core/Event.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include "cushioncache/core/error.h"
#include "cushioncache/core/memory_usage.h"

namespace cushioncache {
namespace {

std::int64_t tensor_bytes(const at::Tensor& t) { return t.numel() * static_cast<std::int64_t>(t.element_size()); }

// Staged tensors start on 64-byte boundaries of the pinned buffer.
constexpr std::int64_t kStagingAlignment = 64;
std::int64_t aligned(std::int64_t bytes) { return (bytes + kStagingAlignment - 1) / kStagingAlignment * kStagingAlignment; }

}  // namespace

BlockPlacement place_blocks(const std::vector<std::int64_t>& block_bytes, std::int64_t other_bytes, std::int64_t budget_bytes) {
  const int blocks = static_cast<int>(block_bytes.size());
  const std::int64_t all = std::accumulate(block_bytes.begin(), block_bytes.end(), other_bytes);
  if (all <= budget_bytes) return {blocks, all};
  // Resident blocks from the first: each one kept saves its copy on every forward. Room
  // for two streamed blocks stays free: the running one and the prefetched next one.
  std::vector<std::int64_t> largest_from(static_cast<std::size_t>(blocks) + 1, 0);
  for (int l = blocks - 1; l >= 0; --l)
    largest_from[static_cast<std::size_t>(l)] = std::max(largest_from[static_cast<std::size_t>(l) + 1], block_bytes[static_cast<std::size_t>(l)]);
  std::int64_t resident = other_bytes, least = blocks == 0 ? other_bytes : -1;
  BlockPlacement best{-1, 0};
  // Not monotonic in r: keeping a large first block resident can shrink the streaming
  // room by more than it costs, so every r is tried.
  for (int r = 0; r < blocks; ++r) {
    const std::int64_t peak = resident + 2 * largest_from[static_cast<std::size_t>(r)];
    if (peak <= budget_bytes) best = {r, peak};
    if (least < 0 || peak < least) least = peak;
    resident += block_bytes[static_cast<std::size_t>(r)];
  }
  if (best.resident_blocks < 0)
    throw_error(ErrorKind::kInvalidArgument,
                "the device memory budget {} is below what the weights need on the device even when streamed: {} (embeddings, norms "
                "and head {}, plus room for two blocks in flight, the largest {}); activations need room beside that",
                format_bytes(budget_bytes), format_bytes(least), format_bytes(other_bytes), format_bytes(largest_from[0]));
  return best;
}

BlockStreamer::BlockStreamer(std::vector<std::vector<at::Tensor*>> slots, c10::Device device)
    : slots_(std::move(slots)), host_(slots_.size()), device_(device) {}

BlockStreamer::~BlockStreamer() = default;

bool BlockStreamer::streams(int layer) const {
  return layer >= 0 && layer < static_cast<int>(slots_.size()) && !slots_[static_cast<std::size_t>(layer)].empty();
}

int BlockStreamer::next_streamed(int layer) const {
  const int blocks = static_cast<int>(slots_.size());
  for (int step = 1; step <= blocks; ++step) {
    const int candidate = (layer + step) % blocks;
    if (streams(candidate)) return candidate;
  }
  return -1;
}

std::vector<at::Tensor> BlockStreamer::copy_to_device(int layer) {
  std::vector<at::Tensor> copies;
  for (const at::Tensor* slot : slots_.at(static_cast<std::size_t>(layer)))
    // copy = true: a separate device tensor even where the device is the host's (CPU).
    copies.push_back(slot->to(device_, slot->scalar_type(), /*non_blocking=*/true, /*copy=*/true));
  return copies;
}

void BlockStreamer::prefetch(int layer) {
  if (!streams(layer) || layer == prefetched_layer_ || !host_[static_cast<std::size_t>(layer)].empty()) return;
  prefetched_.clear();
  prefetched_layer_ = -1;
  if (!device_.is_cuda()) {
    // Nothing runs asynchronously on the host: the copy is made now, and only saves
    // acquire() from making it.
    prefetched_ = copy_to_device(layer);
    prefetched_layer_ = layer;
    return;
  }
  const c10::impl::VirtualGuardImpl guard(device_.type());
  if (!side_stream_) side_stream_ = guard.getStreamFromGlobalPool(device_, /*isHighPriority=*/false);
  const c10::Stream compute = guard.getStream(device_);
  const int buffer = next_staging_;
  next_staging_ ^= 1;
  // The buffer's previous copy to the device must be done before it is overwritten.
  if (staging_free_[buffer] != nullptr)
    while (!staging_free_[buffer]->query()) std::this_thread::yield();
  if (!staging_[buffer].defined()) {
    std::int64_t bytes = 0;
    for (const auto& block : slots_) {
      std::int64_t block_total = 0;
      for (const at::Tensor* t : block) block_total += aligned(tensor_bytes(*t));
      bytes = std::max(bytes, block_total);
    }
    staging_[buffer] = at::empty({bytes}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
  }
  {
    const c10::StreamGuard on_side(*side_stream_);
    std::int64_t offset = 0;
    for (const at::Tensor* slot : slots_[static_cast<std::size_t>(layer)]) {
      const std::int64_t bytes = tensor_bytes(*slot);
      at::Tensor staged = staging_[buffer].narrow(0, offset, bytes).view(slot->scalar_type()).view(slot->sizes());
      offset += aligned(bytes);
      // A host copy (from the memory map into pinned memory) while the GPU runs the
      // kernels already queued; then an asynchronous copy on the side stream.
      staged.copy_(*slot);
      at::Tensor on_device = staged.to(device_, slot->scalar_type(), /*non_blocking=*/true);
      // Allocated on the side stream, used on the compute stream: the allocator must not
      // hand the memory out again before the compute stream is done with it.
      on_device.record_stream(compute);
      prefetched_.push_back(std::move(on_device));
    }
  }
  staging_free_[buffer] = std::make_unique<c10::Event>(device_.type());
  staging_free_[buffer]->record(*side_stream_);
  prefetch_ready_ = std::make_unique<c10::Event>(device_.type());
  prefetch_ready_->record(*side_stream_);
  prefetched_layer_ = layer;
}

void BlockStreamer::acquire(int layer) {
  auto& slots = slots_.at(static_cast<std::size_t>(layer));
  auto& host = host_[static_cast<std::size_t>(layer)];
  if (!host.empty()) throw_error(ErrorKind::kInternal, "block {} is already on the device", layer);
  std::vector<at::Tensor> copies;
  if (prefetched_layer_ == layer) {
    copies = std::move(prefetched_);
    // The compute stream waits for the side stream's copies; the host does not.
    if (prefetch_ready_ != nullptr) prefetch_ready_->block(c10::impl::VirtualGuardImpl(device_.type()).getStream(device_));
  } else {
    copies = copy_to_device(layer);
  }
  prefetched_.clear();
  prefetched_layer_ = -1;
  prefetch_ready_.reset();
  for (std::size_t i = 0; i < slots.size(); ++i) {
    host.push_back(*slots[i]);
    *slots[i] = std::move(copies[i]);
  }
}

void BlockStreamer::release(int layer) {
  auto& slots = slots_.at(static_cast<std::size_t>(layer));
  auto& host = host_[static_cast<std::size_t>(layer)];
  for (std::size_t i = 0; i < host.size(); ++i) *slots[i] = std::move(host[i]);
  host.clear();
}

std::int64_t BlockStreamer::largest_block_bytes() const {
  std::int64_t largest = 0;
  for (const auto& block : slots_) {
    std::int64_t bytes = 0;
    for (const at::Tensor* t : block) bytes += tensor_bytes(*t);
    largest = std::max(largest, bytes);
  }
  return largest;
}

}  // namespace cushioncache
