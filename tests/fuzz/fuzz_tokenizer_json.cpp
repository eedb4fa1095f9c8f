// tokenizer.json (Hugging Face tokenizers): the loaded tokenizer also encodes and decodes
// a line, so the normalizer, pre-tokenizer, BPE and decoder built from the file all run.
#include "cushioncache/tokenizer/hf_tokenizer.h"
#include "cushioncache/tokenizer/tokenizer.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = cushioncache::fuzz::write_input("tokenizer.json", data, size);
  return cushioncache::fuzz::expect_clean_outcome([&] {
    const auto tokenizer = cushioncache::load_hf_tokenizer(path, std::nullopt);
    const auto ids = tokenizer->encode(" Hello world, it's 2024!\n\tdéjà vu 日本", cushioncache::BosPolicy::kAuto);
    (void)tokenizer->decode(ids, /*skip_special=*/false);
  });
}
