// A CushionCache prefix artifact (safetensors with its metadata: model identity, prefix
// tokens, per-layer KV), read as `--prefix` reads it before binding it to a model.
#include "cushioncache/artifact/artifact.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = cushioncache::fuzz::write_input("prefix.safetensors", data, size);
  return cushioncache::fuzz::expect_clean_outcome([&] { (void)cushioncache::load_artifact(path); });
}
