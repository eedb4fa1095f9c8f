// How long does loading a model take, and how much memory at the peak: the same model
// from a llama.cpp .gguf (dequantized at load) and from the Hugging Face folder that
// `cushioncache convert` writes, or any other format the loader reads.
//
// Every load runs in a fresh child process, so no load inherits the previous one's freed
// memory or allocator state; the page cache is shared, so the first load of each file is
// reported apart ("first") from the median of the rest. Peak memory is the child's peak
// resident set during the load minus its resident set just before it; "+read" columns add
// a read of every weight, which is where a memory-mapped file pays.
//
//   bench_load --model A.gguf --model B_folder [--reps 5] [--threads 0]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include "cushioncache/core/allocator.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/memory_usage.h"
#include "cushioncache/model/loader.h"

namespace cc = cushioncache;
namespace fs = std::filesystem;

namespace {

struct LoadSample {
  double seconds = 0;
  std::int64_t peak_extra_bytes = 0;  // peak RSS during the load minus RSS before it
  // The same once every weight has been read: a memory-mapped safetensors file "loads" in
  // milliseconds and pays when the first forward touches its pages.
  double touched_seconds = 0;
  std::int64_t touched_peak_extra_bytes = 0;
  std::int64_t weight_bytes = 0;      // what the loaded weights hold
  int exit_code = 0;
};

// A load that failed with a named error in the child, which printed it: exit with its code.
struct ChildFailed {
  int exit_code;
};

// In the child: one load, its figures written to `fd`. Never returns.
[[noreturn]] void load_in_child(const std::string& path, int threads, int fd) {
  LoadSample s;
  try {
    if (threads > 0) at::set_num_threads(threads);
    cc::reset_peak_resident();
    const std::int64_t before = cc::resident_bytes();
    const auto start = std::chrono::steady_clock::now();
    auto model = cc::load_model(path);
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    s.peak_extra_bytes = cc::peak_resident_bytes() - before;
    double checksum = 0;
    for (const auto& [name, w] : model->named_weights()) {
      s.weight_bytes += static_cast<std::int64_t>(w->nbytes());
      checksum += w->sum().item<double>();
    }
    s.touched_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    s.touched_peak_extra_bytes = cc::peak_resident_bytes() - before;
    if (!std::isfinite(checksum)) std::fprintf(stderr, "bench_load: %s: the weights sum to %g\n", path.c_str(), checksum);
  } catch (const cc::Error& e) {
    std::fprintf(stderr, "bench_load: %s\n", e.what());
    s.exit_code = cc::exit_code(e.kind());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_load: %s: %s\n", path.c_str(), e.what());
    s.exit_code = 1;
  }
  const bool written = write(fd, &s, sizeof s) == static_cast<ssize_t>(sizeof s);
  _exit(written ? s.exit_code : 1);
}

LoadSample load_once(const std::string& path, int threads) {
  int fds[2];
  if (pipe(fds) != 0) cc::throw_error(cc::ErrorKind::kInternal, "bench_load: pipe() failed");
  const pid_t pid = fork();
  if (pid < 0) cc::throw_error(cc::ErrorKind::kInternal, "bench_load: fork() failed");
  if (pid == 0) {
    close(fds[0]);
    load_in_child(path, threads, fds[1]);
  }
  close(fds[1]);
  LoadSample s;
  const bool got = read(fds[0], &s, sizeof s) == static_cast<ssize_t>(sizeof s);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got && s.exit_code != 0) throw ChildFailed{s.exit_code};  // the child printed the named error
  if (!got || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    cc::throw_error(cc::ErrorKind::kInternal, "loading {} ended the child process abnormally (status {})", path, status);
  return s;
}

std::string format_name(const std::string& path) {
  if (fs::is_directory(path)) return "HF folder";
  const std::string ext = fs::path(path).extension().string();
  return ext == ".gguf" ? "gguf" : ext == ".bin" ? "llama2.c" : ext;
}

std::int64_t bytes_on_disk(const fs::path& path) {
  if (!fs::is_directory(path)) return static_cast<std::int64_t>(fs::file_size(path));
  std::int64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(path))
    if (e.is_regular_file()) total += static_cast<std::int64_t>(e.file_size());
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  cc::reuse_freed_host_memory();  // as the CLI does: measure what users run
  CLI::App app{"Load time and peak memory of models (.gguf, Hugging Face folder, llama2.c .bin), each load in a fresh process"};
  std::vector<std::string> models;
  int reps = 5, threads = 0;
  app.add_option("--model", models, "a model to load (repeat to compare)")->required()->check(CLI::ExistingPath);
  app.add_option("--reps", reps, "loads per model after the first (median reported)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "intra-op threads in each child (0 = LibTorch default)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    std::printf(
        "each load in a fresh process; first load apart, then the median of %d; peak = peak RSS during the load - RSS before;\n"
        "+read: the load and then a read of every weight (the first forward's page faults of a memory-mapped file)\n\n",
        reps);
    std::printf("%-10s %10s %10s %9s %9s %11s %11s %12s %12s  %s\n", "format", "on disk", "weights", "first s", "median s", "peak +RSS",
                "+read s", "+read peak", "peak/weights", "path");
    for (const auto& path : models) {
      const LoadSample first = load_once(path, threads);
      std::vector<LoadSample> rest;
      for (int i = 0; i < reps; ++i) rest.push_back(load_once(path, threads));
      std::sort(rest.begin(), rest.end(), [](const LoadSample& a, const LoadSample& b) { return a.seconds < b.seconds; });
      const LoadSample& median = rest[rest.size() / 2];
      std::int64_t peak = 0, touched_peak = 0;
      for (const auto& s : rest) peak = std::max(peak, s.peak_extra_bytes), touched_peak = std::max(touched_peak, s.touched_peak_extra_bytes);
      std::vector<double> touched;
      for (const auto& s : rest) touched.push_back(s.touched_seconds);
      std::sort(touched.begin(), touched.end());
      std::printf("%-10s %10s %10s %9.3f %9.3f %11s %11.3f %11s %12.2f  %s\n", format_name(path).c_str(),
                  cc::format_bytes(bytes_on_disk(path)).c_str(), cc::format_bytes(median.weight_bytes).c_str(), first.seconds, median.seconds,
                  cc::format_bytes(peak).c_str(), touched[touched.size() / 2], cc::format_bytes(touched_peak).c_str(),
                  static_cast<double>(touched_peak) / static_cast<double>(std::max<std::int64_t>(median.weight_bytes, 1)), path.c_str());
    }
  } catch (const ChildFailed& f) {
    return f.exit_code;
  } catch (const cc::Error& e) {
    std::fprintf(stderr, "bench_load: %s\n", e.what());
    return cc::exit_code(e.kind());
  }
  return 0;
}
