#include "commands.h"

#include "cushioncache/core/tensor_options.h"

namespace cushioncache::cli {

void ModelFlags::add_to(CLI::App& command) {
  command.add_option("--device", device, "cpu, cuda or cuda:N")->capture_default_str();
  command.add_option("--dtype", dtype, "auto (float32 on CPU, the checkpoint's dtype on CUDA), float32, bfloat16, float16")
      ->capture_default_str();
}

LoadOptions ModelFlags::load_options() const {
  LoadOptions options;
  options.device = parse_device(device);
  if (dtype != "auto") options.dtype = parse_float_dtype(dtype);
  return options;
}

}  // namespace cushioncache::cli
