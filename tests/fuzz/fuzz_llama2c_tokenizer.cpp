// A llama2.c tokenizer (tokenizer.bin): max token length, then score, length and bytes
// per token; the loaded tokenizer encodes and decodes a line.
#include "cushioncache/tokenizer/llama2c_tokenizer.h"
#include "cushioncache/tokenizer/tokenizer.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = cushioncache::fuzz::write_input("tokenizer.bin", data, size);
  return cushioncache::fuzz::expect_clean_outcome([&] {
    const auto tokenizer = cushioncache::load_llama2c_tokenizer(path);
    (void)tokenizer->decode(tokenizer->encode("Once upon a time, 日本.", cushioncache::BosPolicy::kYes));
  });
}
