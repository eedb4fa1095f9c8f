// model.safetensors.index.json beside one valid shard (written once, by our own writer);
// every tensor the index maps is loaded.
#include <ATen/ATen.h>

#include "cushioncache/io/safetensors.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cushioncache::write_safetensors(cushioncache::fuzz::scratch_dir() / "model-00001-of-00001.safetensors",
                                  {{"a.weight", at::arange(12, at::kFloat).reshape({3, 4})},
                                   {"b.bias", at::ones({5}, at::kBFloat16)}});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = cushioncache::fuzz::write_input("model.safetensors.index.json", data, size);
  return cushioncache::fuzz::expect_clean_outcome([&] {
    const auto checkpoint = cushioncache::SafetensorsCheckpoint::open(path);
    for (const auto& name : checkpoint.names()) (void)checkpoint.load(name);
  });
}
