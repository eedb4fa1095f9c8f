// Block streaming (CausalLM::stream_blocks): the weights of the streamed blocks live in
// host memory and are copied to the device only while the block runs. The streamer holds
// the address of every streamed weight inside the model (from named_weights()) and swaps
// what those addresses hold: the device copy for the run, the host tensor after. Whatever
// the slot holds when its copy starts is what gets copied, so weights changed in place
// between forwards (quantization, SmoothQuant) stream as changed.
//
// While block l runs, the next streamed block is prefetched: on CUDA its weights go
// through a pinned staging buffer (the host-side copy overlaps the kernels already queued
// for block l) to the device on a side stream, and block l + 1 waits on an event for
// them, not the host. So the device holds two streamed blocks at most.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/Stream.h>

namespace c10 {
class Event;
}

namespace cushioncache {

// Which blocks stay on the device under a budget for the weights' device memory.
struct BlockPlacement {
  int resident_blocks = 0;             // blocks 0 .. resident_blocks - 1 stay on the device; the rest stream
  std::int64_t peak_device_bytes = 0;  // the weights' device memory at most: the rest, resident blocks, two streamed blocks
};

// The most blocks (from the first) that stay resident while the others stream within
// `budget_bytes` of device memory for weights: `other_bytes` (embeddings, head, norms)
// plus the resident blocks plus room for two streamed blocks (the running one and the
// prefetched one). Everything resident when it all fits. kInvalidArgument "the device
// memory budget ... is below", with the minimum, when not even streaming fits.
BlockPlacement place_blocks(const std::vector<std::int64_t>& block_bytes, std::int64_t other_bytes, std::int64_t budget_bytes);

class BlockStreamer {
 public:
  // slots[l]: the addresses of block l's weights; empty for a block that stays resident.
  BlockStreamer(std::vector<std::vector<at::Tensor*>> slots, c10::Device device);
  ~BlockStreamer();
  BlockStreamer(const BlockStreamer&) = delete;
  BlockStreamer& operator=(const BlockStreamer&) = delete;

  bool streams(int layer) const;
  // The streamed block that runs after `layer`, wrapping around to the first (the next
  // forward starts there); -1 when no block streams.
  int next_streamed(int layer) const;

  // Starts copying block `layer`'s weights to the device; acquire(layer) uses the copy.
  // A prefetch that acquire() does not claim (the caller ran another block) is dropped.
  void prefetch(int layer);
  // Points block `layer`'s slots at device copies until release().
  void acquire(int layer);
  void release(int layer);

  // The bytes of the largest streamed block's weights.
  std::int64_t largest_block_bytes() const;

 private:
  std::vector<at::Tensor> copy_to_device(int layer);

  std::vector<std::vector<at::Tensor*>> slots_;
  std::vector<std::vector<at::Tensor>> host_;  // per block, while acquired
  c10::Device device_;

  int prefetched_layer_ = -1;
  std::vector<at::Tensor> prefetched_;
  // CUDA only: the side stream, the copy-done event of the prefetch, and two pinned
  // staging buffers used in turn, each with the event of the last copy out of it.
  std::optional<c10::Stream> side_stream_;
  std::unique_ptr<c10::Event> prefetch_ready_;
  std::array<at::Tensor, 2> staging_;
  std::array<std::unique_ptr<c10::Event>, 2> staging_free_;
  int next_staging_ = 0;
};

// Releases the block when it goes out of scope (also when the block throws).
class AcquiredBlock {
 public:
  AcquiredBlock(BlockStreamer& streamer, int layer) : streamer_(streamer), layer_(layer) { streamer_.acquire(layer_); }
  ~AcquiredBlock() { streamer_.release(layer_); }
  AcquiredBlock(const AcquiredBlock&) = delete;
  AcquiredBlock& operator=(const AcquiredBlock&) = delete;

 private:
  BlockStreamer& streamer_;
  int layer_;
};

}  // namespace cushioncache
