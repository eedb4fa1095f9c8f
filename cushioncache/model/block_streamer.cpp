#include "cushioncache/model/block_streamer.h"

#include <algorithm>

#include <ATen/ATen.h>

#include "cushioncache/core/error.h"

namespace cushioncache {

BlockStreamer::BlockStreamer(std::vector<std::vector<at::Tensor*>> slots, c10::Device device)
    : slots_(std::move(slots)), host_(slots_.size()), device_(device) {}

void BlockStreamer::acquire(int layer) {
  auto& slots = slots_.at(static_cast<std::size_t>(layer));
  auto& host = host_[static_cast<std::size_t>(layer)];
  if (!host.empty()) throw_error(ErrorKind::kInternal, "block {} is already on the device", layer);
  for (at::Tensor* slot : slots) {
    host.push_back(*slot);
    // copy = true: a separate device tensor even where the device is the host's (CPU).
    *slot = slot->to(device_, slot->scalar_type(), /*non_blocking=*/true, /*copy=*/true);
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
    for (const at::Tensor* t : block) bytes += t->numel() * static_cast<std::int64_t>(t->element_size());
    largest = std::max(largest, bytes);
  }
  return largest;
}

}  // namespace cushioncache
