// What does real INT8 buy on CPU? The linear layers of one LLaMA-7B block (hidden 4096,
// MLP 11008) at T tokens: float32 at::linear, the INT8 GEMM alone (oneDNN, int32
// accumulation, dequantizing epilogue), and the whole W8A8 linear (quantize the input,
// GEMM) as Int8LinearKernel runs it, with the bytes of weight each holds.
//
//   bench_w8a8_block [--seq-len 512] [--reps 5] [--threads 0]
//
// With --cases FILE.safetensors it times Int8LinearKernel::forward on given data instead
// (benchmarks/compare/compare_int8_linear.py writes the file, to hold PyTorch's INT8 paths
// to the same inputs): for every case C, C.x [M, K] float32, C.input [2] (the static
// activation scale and zero-point, 8-bit asymmetric) and the weight of its shape S =
// C minus its last ".part", S.weight [N, K] int8 and S.w_scales [N] float32 (symmetric,
// per channel). One JSON line per case on stdout; --outputs writes every C.y [M, N].
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>  // c10::NoGradGuard: ATen.h no longer brings it in PyTorch 2.x
#include <CLI/CLI.hpp>

#include "cushioncache/core/allocator.h"
#include "cushioncache/core/error.h"
#include "cushioncache/io/safetensors.h"
#include "cushioncache/kernels/int8_gemm.h"
#include "cushioncache/quant/fake_quant.h"
#include "cushioncache/quant/int8_linear.h"
#include "bench_common.h"

namespace cc = cushioncache;

namespace {

// Times the W8A8 linear as `--exec int8` runs it on every case of `path`, the output kept
// for the caller to compare.
void run_cases(const std::string& path, const std::string& outputs, int reps) {
  const cc::SafetensorsFile file = cc::SafetensorsFile::open(path);
  const cc::QuantSpec weight_spec = cc::parse_quant_spec("w8-per-channel-sym", cc::QuantRole::kWeight);
  const cc::QuantSpec input_spec = cc::parse_quant_spec("a8-per-tensor-static-asym", cc::QuantRole::kActivation);
  const auto [qmin, qmax] = cc::integer_range(input_spec);
  std::vector<std::pair<std::string, at::Tensor>> ys;
  const std::string suffix = ".x";
  for (const std::string& name : file.names()) {
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string c = name.substr(0, name.size() - suffix.size());
    const std::string shape = c.substr(0, c.rfind('.'));
    const at::Tensor x = file.load(name), input = file.load(c + ".input");
    const at::Tensor qweight = file.load(shape + ".weight"), w_scales = file.load(shape + ".w_scales");
    // The kernel takes the fake-quantized float weight and recovers int8 and scales from it.
    const cc::Int8LinearKernel kernel(qweight.to(at::kFloat) * w_scales.unsqueeze(1), at::Tensor(), weight_spec, input_spec,
                                      cc::QuantParams{input.slice(0, 0, 1).clone(), input.slice(0, 1, 2).clone(), qmin, qmax});
    if (!kernel.int8_weight().equal(qweight))
      cc::throw_error(cc::ErrorKind::kMismatch, "{}: the kernel's int8 weight differs from the file's", shape);
    const double t = cc::bench::median_seconds(reps, c10::Device(c10::kCPU), [&] { (void)kernel.forward(x); });
    ys.emplace_back(c + ".y", kernel.forward(x));
    std::printf("{\"case\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, \"seconds\": %.9g, \"reps\": %d, \"threads\": %d}\n",
                c.c_str(), static_cast<long long>(x.size(0)), static_cast<long long>(qweight.size(0)), static_cast<long long>(x.size(1)), t,
                reps, at::get_num_threads());
    std::fflush(stdout);
  }
  if (!outputs.empty()) cc::write_safetensors(outputs, ys);
}

}  // namespace

int main(int argc, char** argv) {
  cc::reuse_freed_host_memory();  // as the CLI does: measure what users run
  CLI::App app{"INT8 GEMM vs float32 on the linear layers of a LLaMA-7B block (CPU, oneDNN)"};
  cc::bench::BlockFlags flags;
  flags.add_to(app);
  std::string cases, outputs;
  app.add_option("--cases", cases, "time the W8A8 linear on the cases of this safetensors file instead (JSON lines)");
  app.add_option("--outputs", outputs, "with --cases: write each case's output here");
  CLI11_PARSE(app, argc, argv);
  try {
    const c10::Device device = flags.apply();
    if (!cases.empty()) {
      c10::NoGradGuard no_grad;
      run_cases(cases, outputs, flags.reps);
      return 0;
    }
    if (!device.is_cpu()) cc::throw_error(cc::ErrorKind::kUnsupported, "bench_w8a8_block measures the CPU W8A8 path (Int8LinearKernel); bench_gemm_int8 has the GPU GEMM tables");
    if (!cc::kernels::cpu_int8_gemm_available())
      cc::throw_error(cc::ErrorKind::kUnsupported, "this build has no oneDNN: install libdnnl-dev and reconfigure");
    c10::NoGradGuard no_grad;
    const std::int64_t T = flags.seq_len;
    std::printf("device cpu, %d intra-op threads (oneDNN and BLAS run their own), T = %lld, median of %d runs\n\n", at::get_num_threads(),
                static_cast<long long>(T), flags.reps);
    std::printf("%-22s %12s %12s %12s %10s %10s %12s\n", "layer (in -> out)", "float32 ms", "int8 gemm ms", "w8a8 ms", "gemm x", "w8a8 x",
                "weight MB");
    const cc::QuantSpec weight_spec = cc::parse_quant_spec("w8-per-channel-sym", cc::QuantRole::kWeight);
    const cc::QuantSpec input_spec = cc::parse_quant_spec("a8-per-tensor-static-asym", cc::QuantRole::kActivation);
    struct Shape {
      const char* name;
      std::int64_t in, out, count;  // count: how many such layers a block has
    };
    double float_total = 0, int8_total = 0;
    for (const Shape& s : {Shape{"q/k/v/o (4096->4096)", 4096, 4096, 4}, Shape{"gate/up (4096->11008)", 4096, 11008, 2},
                           Shape{"down (11008->4096)", 11008, 4096, 1}}) {
      at::manual_seed(0);
      const at::Tensor x = at::randn({1, T, s.in});
      at::Tensor w = at::randn({s.out, s.in}) * 0.02;
      const auto [wmin, wmax] = std::make_pair(w.amin(1), w.amax(1));
      w = cc::fake_quantize(w, cc::params_for_range(wmin.unsqueeze(1), wmax.unsqueeze(1), weight_spec));
      const cc::QuantParams input = cc::params_for_range(x.min().reshape({1}), x.max().reshape({1}), input_spec);
      const cc::Int8LinearKernel kernel(w, at::Tensor(), weight_spec, input_spec, input);

      // The GEMM alone, on inputs already quantized.
      const at::Tensor qa = at::round(x.reshape({T, s.in}) / input.scale).add_(input.zero_point).clamp_(0, 255).to(at::kByte).contiguous();
      const at::Tensor qw = at::round(w / (w.abs().amax(1, true) / 127)).to(at::kChar).contiguous();
      const at::Tensor w_scales = (w.abs().amax(1) / 127).contiguous();
      at::Tensor y = at::empty({T, s.out});
      cc::kernels::Int8Gemm g;
      g.m = T, g.n = s.out, g.k = s.in;
      g.a = qa.data_ptr();
      g.a_unsigned = true;
      g.a_zero_point = static_cast<std::int32_t>(input.zero_point.item<float>());
      g.a_scale = input.scale.item<float>();
      g.w = qw.data_ptr<std::int8_t>();
      g.w_scales = w_scales.data_ptr<float>();
      g.w_per_channel = true;
      g.y = y.data_ptr<float>();

      const double t_float = cc::bench::median_seconds(flags.reps, device, [&] { (void)at::linear(x, w); });
      const double t_gemm = cc::bench::median_seconds(flags.reps, device, [&] { cc::kernels::int8_gemm_cpu(g); });
      const double t_w8a8 = cc::bench::median_seconds(flags.reps, device, [&] { (void)kernel.forward(x); });
      float_total += t_float * static_cast<double>(s.count);
      int8_total += t_w8a8 * static_cast<double>(s.count);
      std::printf("%-22s %12.2f %12.2f %12.2f %9.2fx %9.2fx %5.1f -> %4.1f\n", s.name, 1e3 * t_float, 1e3 * t_gemm, 1e3 * t_w8a8,
                  t_float / t_gemm, t_float / t_w8a8, static_cast<double>(w.numel() * 4) / 1e6, static_cast<double>(kernel.bytes()) / 1e6);
      std::fflush(stdout);
    }
    std::printf("\nthe block's 7 linear layers: float32 %.1f ms, W8A8 %.1f ms (%.2fx)\n", 1e3 * float_total, 1e3 * int8_total,
                float_total / int8_total);
  } catch (const cc::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return cc::exit_code(e.kind());
  }
  return 0;
}
