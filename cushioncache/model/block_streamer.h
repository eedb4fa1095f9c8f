// Block streaming (CausalLM::stream_blocks): each block's weights live in host memory and
// are copied to the device only while the block runs. The streamer holds the address of
// every block weight inside the model (from named_weights()) and swaps what those
// addresses hold: the device copy for the run, the host tensor after. Whatever the slot
// holds when a block starts is what gets copied, so weights changed in place between
// forwards (quantization, SmoothQuant) stream as changed.
#pragma once

#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace cushioncache {

class BlockStreamer {
 public:
  // slots[l]: the addresses of block l's weights.
  BlockStreamer(std::vector<std::vector<at::Tensor*>> slots, c10::Device device);

  // Points block `layer`'s slots at device copies until release().
  void acquire(int layer);
  void release(int layer);

  // The bytes one block's weights take (the largest block): what the device holds at
  // most, beside the embeddings and the head.
  std::int64_t largest_block_bytes() const;

 private:
  std::vector<std::vector<at::Tensor*>> slots_;
  std::vector<std::vector<at::Tensor>> host_;  // per block, while acquired
  c10::Device device_;
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
