// How fast is evaluation, and what do batching and shared contexts buy? On stories260K
// (the real llama2.c model): perplexity tokens/s on WikiText-2 and HellaSwag items/s, one
// sequence at a time versus batched (and, for HellaSwag, with each item's context run
// once for its four endings), in one run.
//
//   bench_eval [--windows 16] [--items 200] [--threads N]
#include <chrono>
#include <cstdio>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include "cushioncache/core/allocator.h"
#include "cushioncache/core/data_dir.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"
#include "cushioncache/io/corpus.h"
#include "cushioncache/eval/perplexity.h"
#include "cushioncache/eval/tasks.h"
#include "cushioncache/eval/zero_shot.h"
#include "cushioncache/model/loader.h"

namespace cc = cushioncache;

int main(int argc, char** argv) {
  cc::reuse_freed_host_memory();  // as the CLI does: measure what users run
  CLI::App app{"Evaluation throughput on stories260K: perplexity and HellaSwag, unbatched vs batched"};
  std::int64_t windows = 16, items = 200;
  int threads = 0;
  app.add_option("--windows", windows, "perplexity windows of 512 tokens")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--items", items, "HellaSwag items (4 requests each)")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "intra-op threads (0 = LibTorch default)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    if (threads > 0) at::set_num_threads(threads);
    cc::log::set_level(cc::log::Level::kWarn);  // no progress lines inside timings
    auto bin = cc::find_data("models/stories260K/stories260K.bin");
    auto tok = cc::find_data("models/stories260K/tok512.bin");
    if (!bin || !tok) {
      std::fprintf(stderr, "stories260K not found under %s (set CC_DATA_DIR)\n", cc::data_dir().c_str());
      return 3;
    }
    auto model = cc::load_model(*bin);
    auto tokenizer = cc::load_tokenizer(*tok);
    std::printf("stories260K on cpu, %d intra-op threads\n\n", at::get_num_threads());
    std::printf("%-38s %8s %10s %14s %9s\n", "workload", "batch", "time (s)", "throughput", "speed-up");

    const auto tokens = tokenizer->encode(cc::load_corpus("wikitext2").text, cc::BosPolicy::kAuto);
    double unbatched = 0;
    for (std::int64_t batch : {1, 8}) {
      cc::PerplexityOptions options;
      options.seq_len = 512;
      options.max_windows = windows;
      options.batch_size = batch;
      (void)cc::evaluate_perplexity(*model, tokens, options);  // warm-up
      const auto r = cc::evaluate_perplexity(*model, tokens, options);
      const double rate = static_cast<double>(r.windows * r.seq_len) / r.seconds;
      if (batch == 1) unbatched = rate;
      std::printf("%-38s %8lld %10.3f %10.0f tok/s %8.2fx\n", "WikiText-2 perplexity (T = 512)", static_cast<long long>(batch), r.seconds,
                  rate, rate / unbatched);
    }

    const cc::Task task = cc::load_task("hellaswag", items);
    struct Setting {
      const char* name;
      std::int64_t batch;
      bool share;
    };
    for (const Setting setting : {Setting{"HellaSwag, one request at a time", 1, false}, Setting{"HellaSwag, batched", 16, false},
                                  Setting{"HellaSwag, batched + shared contexts", 16, true}}) {
      cc::ZeroShotOptions options;
      options.batch_size = setting.batch;
      options.share_contexts = setting.share;
      (void)cc::evaluate_task(*model, *tokenizer, task, options);  // warm-up
      const auto r = cc::evaluate_task(*model, *tokenizer, task, options);
      const double rate = static_cast<double>(r.items) / r.seconds;
      if (!setting.share && setting.batch == 1) unbatched = rate;
      std::printf("%-38s %8lld %10.3f %9.1f item/s %8.2fx\n", setting.name, static_cast<long long>(setting.batch), r.seconds, rate,
                  rate / unbatched);
    }
  } catch (const cc::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return cc::exit_code(e.kind());
  }
  return 0;
}
