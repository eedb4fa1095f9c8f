// A llama2.c checkpoint (.bin): the 7-int header, then the weights its dimensions imply.
#include "cushioncache/io/llama2c.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = cushioncache::fuzz::write_input("model.bin", data, size);
  return cushioncache::fuzz::expect_clean_outcome([&] { (void)cushioncache::read_llama2c_checkpoint(path); });
}
