// A .safetensors file: header length, JSON header, data offsets; every tensor is loaded.
#include "cushioncache/io/safetensors.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = cushioncache::fuzz::write_input("model.safetensors", data, size);
  return cushioncache::fuzz::expect_clean_outcome([&] {
    const auto file = cushioncache::SafetensorsFile::open(path);
    for (const auto& name : file.names()) (void)file.load(name);
  });
}
