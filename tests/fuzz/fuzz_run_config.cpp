// A `cushioncache run` config (YAML), read and validated before any work.
#include "cushioncache/pipeline/run.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = cushioncache::fuzz::write_input("run.yaml", data, size);
  return cushioncache::fuzz::expect_clean_outcome([&] { (void)cushioncache::load_run_config(path.string()); });
}
