// A LibTorch optimizer's state (Adam's moments and step counts) as bytes in PyTorch's
// archive format, the bytes torch::save writes: the one way the trainer's and the prefix
// tuner's checkpoints keep their optimizer, so both resume bit-exact.
#pragma once

#include <string>

#include <c10/core/Device.h>

namespace torch::optim {
class Optimizer;
}

namespace cushioncache {

std::string optimizer_state_bytes(const torch::optim::Optimizer& optimizer);

// Restores what optimizer_state_bytes wrote into an optimizer over the same parameters,
// its tensors on `device` (the parameters'; the state may have been saved on another GPU
// or machine). kCorruptInput naming `source` (the checkpoint) when the bytes are not such
// a state.
void load_optimizer_state(torch::optim::Optimizer& optimizer, const std::string& bytes, c10::Device device, const std::string& source);

}  // namespace cushioncache
