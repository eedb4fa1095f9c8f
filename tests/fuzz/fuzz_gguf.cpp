// A .gguf file: header counts, typed metadata (arrays of arrays), tensor infos and data
// offsets; every tensor is dequantized (types without a dequantizer must say so).
#include "cushioncache/io/gguf.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = cushioncache::fuzz::write_input("model.gguf", data, size);
  return cushioncache::fuzz::expect_clean_outcome([&] {
    const auto file = cushioncache::GgufFile::open(path);
    for (const auto& info : file.tensors()) {
      try {
        (void)file.dequantize(info.name);
      } catch (const cushioncache::Error& e) {
        if (e.kind() != cushioncache::ErrorKind::kUnsupported) throw;
      }
    }
  });
}
