// tokenizer_config.json beside a fixed five-token tokenizer.json: a few tokens are enough
// to exercise what the config controls (BOS/EOS tokens and whether they are added).
#include "cushioncache/tokenizer/hf_tokenizer.h"
#include "cushioncache/tokenizer/tokenizer.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::ofstream(cushioncache::fuzz::scratch_dir() / "tokenizer.json") << R"({
    "added_tokens": [{"id": 0, "content": "<s>", "special": true}, {"id": 1, "content": "</s>", "special": true}],
    "model": {"type": "BPE", "vocab": {"<s>": 0, "</s>": 1, "a": 2, "b": 3, "ab": 4}, "merges": ["a b"]}})";
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto config = cushioncache::fuzz::write_input("tokenizer_config.json", data, size);
  return cushioncache::fuzz::expect_clean_outcome([&] {
    const auto tokenizer = cushioncache::load_hf_tokenizer(cushioncache::fuzz::scratch_dir() / "tokenizer.json", config);
    (void)tokenizer->decode(tokenizer->encode("abba", cushioncache::BosPolicy::kAuto), /*skip_special=*/true);
  });
}
