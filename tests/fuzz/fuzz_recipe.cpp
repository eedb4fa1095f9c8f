// A YAML quantization recipe (configs/*.yaml), read as `--quant recipe.yaml` reads it.
#include "cushioncache/quant/recipe.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = cushioncache::fuzz::write_input("recipe.yaml", data, size);
  return cushioncache::fuzz::expect_clean_outcome([&] { (void)cushioncache::load_recipe(path.string()); });
}
