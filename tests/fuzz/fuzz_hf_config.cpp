// A Hugging Face config.json, read as the model loader reads it.
#include "cushioncache/model/config.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = cushioncache::fuzz::write_input("config.json", data, size);
  return cushioncache::fuzz::expect_clean_outcome([&] { (void)cushioncache::read_hf_config(path); });
}
