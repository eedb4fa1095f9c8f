// How much cheaper than scoring one candidate at a time is the prefix search as it runs by
// default? One greedy step (prefix = BOS, one C4 text, the same candidates) on
//   1. stories260K, the real llama2.c model (no outliers of its own),
//   2. stories260K with the planted sink (analysis/planted_sink.h), where one candidate
//      wins by far, as in LLaMA-class models,
//   3. SmolLM2-135M-Instruct (the GGUF of scripts/fetch_models.sh, under $CC_MODEL_DIR),
//      a real model with outliers of its own, on a fixed candidate subset: the
//      --smol-candidates most frequent tokens of C4 text (the calibration corpus) plus the
//      punctuation and newline tokens, so that the exhaustive reference runs in minutes,
//   4. (--only llama) a LLaMA-shaped model with random weights (hidden 1024, 8 layers, 16
//      heads of which 4 KV heads, MLP 2816, the LLaMA-2 tokenizer) with a planted sink, on
//      a spread of the vocabulary (--llama-candidates),
// each as the reference, exhaustive one at a time (every candidate through every block,
// batch 1, no pruning), and as the default (SearchOptions' batch size, exact pruning),
// alternating the two --reps times in one process. The machine may be shared, so absolute
// times are noisy: each step is timed both in wall time and in the process's CPU time
// (which waiting for a core does not count; with one intra-op thread it is the compute),
// and the speed-up is the median of the per-repetition CPU-time ratios ("wall x": the
// same for wall time). cand/s is per CPU second.
// Both must choose the same token, and every score the default completes must equal the
// reference's score of that token (the largest relative difference is printed). Each row
// also shows how far the process's resident memory rose above where it stood before the
// step (CPU; freed memory stays resident for reuse, as in the CLI, so only a mode's first
// repetition can rise much) and the working memory the search budgets for the batch
// (batch x candidate_working_bytes, what --max-memory divides).
//
// --batch-sweep 4,32: instead, the default at these batch sizes against SearchOptions'
// default batch, alternating, by CPU time (how the default batch was chosen).
//
// --smol-vocab-rate N: the default's rate on SmolLM2 over the whole vocabulary, measured on
// every (V/N)-th token plus the text's own tokens (what the search orders first), and the
// time a full-vocabulary step would take at that rate.
//
// Started as several ranks (scripts/launch_ranks.sh --nproc N -- bench_search), each
// step's candidates are split over them (docs/scale.md); rank 0 prints the rows, with the
// number of ranks in the "ranks" column and its own memory.
//
//   bench_search [--batch-size 0] [--reps 3] [--tau 0.5] [--batch-sweep 4,32] [--text-tokens 500] [--only stories,planted,smol]
//                [--smol-candidates 512] [--smol-text-tokens 128] [--smol-vocab-rate 0]
//                [--llama-candidates 256] [--llama-text-tokens 128] [--max-memory 1GiB] [--device cpu]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cushioncache/analysis/planted_sink.h"
#include "cushioncache/core/allocator.h"
#include "cushioncache/core/data_dir.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"
#include "cushioncache/core/memory_usage.h"
#include "cushioncache/distributed/process_group.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/tokenizer/text_windows.h"
#include "cushioncache/search/prefix_searcher.h"
#include "bench_common.h"

namespace cc = cushioncache;

namespace {

struct Flags {
  std::int64_t batch_size = 0;  // 0 = SearchOptions' default
  std::int64_t max_memory = 0;
  int reps = 3;
  double tau = 0.5;
  std::vector<std::int64_t> sweep;  // batch sizes to compare (--batch-sweep), instead of the reference
  cc::RunContext context;           // the ranks sharing each step (launched by scripts/launch_ranks.sh)
};

struct Run {
  cc::SearchStep step;
  double cpu_seconds = 0;  // the process's CPU time over the step: what other users of the machine disturb least
  std::string peak = "-";
  std::int64_t batch = 0;
};

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

Run run_step(cc::CausalLM& model, const cc::Tokenizer& tokenizer, const cc::SearchOptions& options, const Flags& flags,
             const std::vector<std::int64_t>& prefix, const std::vector<std::int64_t>& text) {
  cc::PrefixSearcher searcher(model, tokenizer, options, flags.context);
  Run run;
  run.batch = searcher.options().batch_size;
  const bool measured = !model.device().is_cuda() && cc::reset_peak_resident();
  const std::int64_t before = cc::resident_bytes();
  const double cpu_before = cpu_seconds();
  run.step = searcher.score_step(prefix, text);
  run.cpu_seconds = cpu_seconds() - cpu_before;
  if (measured) run.peak = cc::format_bytes(cc::peak_resident_bytes() - before);
  return run;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The reference and the default on one step, alternating; prints a row each and the check.
void bench_model(const char* label, cc::CausalLM& model, const cc::Tokenizer& tokenizer, cc::SearchOptions options, const Flags& flags,
                 const std::vector<std::int64_t>& text) {
  const std::vector<std::int64_t> prefix{*tokenizer.bos_id()};
  options.seed_prefix = prefix;
  options.max_length = 2;
  options.text_tokens = static_cast<std::int64_t>(text.size());
  options.tau = flags.tau;
  cc::SearchOptions reference = options, fast = options;
  reference.batch_size = 1;
  reference.prune = false;
  if (flags.batch_size > 0) fast.batch_size = flags.batch_size;
  fast.max_memory = flags.max_memory;
  std::vector<Run> slow_runs, fast_runs;
  std::vector<double> cpu_ratios, wall_ratios;
  for (int r = 0; r < flags.reps; ++r) {
    slow_runs.push_back(run_step(model, tokenizer, reference, flags, prefix, text));
    fast_runs.push_back(run_step(model, tokenizer, fast, flags, prefix, text));
    cpu_ratios.push_back(slow_runs.back().cpu_seconds / fast_runs.back().cpu_seconds);
    wall_ratios.push_back(slow_runs.back().step.seconds / fast_runs.back().step.seconds);
  }
  const cc::ProcessGroup* group = flags.context.group;
  if (group != nullptr && !group->is_leader()) return;
  const int ranks = group != nullptr ? group->world_size() : 1;
  const std::int64_t element = static_cast<std::int64_t>(c10::elementSize(model.dtype()));
  auto row = [&](const char* mode, const std::vector<Run>& runs, double cpu_ratio, double wall_ratio) {
    std::vector<double> wall, cpu;
    for (const Run& r : runs) {
      wall.push_back(r.step.seconds);
      cpu.push_back(r.cpu_seconds);
    }
    const cc::SearchStep& step = runs.front().step;
    const double c = median(cpu);
    const std::int64_t budget = runs.front().batch * cc::candidate_working_bytes(model, 1, options.text_tokens, element);
    std::printf("%-28s %-15s %5d %5lld %6lld %9.1f%% %9.2f %9.2f %8.2f %8.2fx %8.2fx %10s %10s %6s %12.6g %8s\n", label, mode, ranks,
                static_cast<long long>(runs.front().batch), static_cast<long long>(step.candidates),
                100.0 * static_cast<double>(step.blocks_evaluated) / static_cast<double>(step.blocks_exhaustive), median(wall), c,
                static_cast<double>(step.candidates) / c, cpu_ratio, wall_ratio, runs.front().peak.c_str(), cc::format_bytes(budget).c_str(),
                step.best_token >= 0 ? std::to_string(step.best_token).c_str() : "none", step.best_score,
                step.accepted ? "yes" : "no");
  };
  row("exhaustive 1x1", slow_runs, 1.0, 1.0);
  row("default", fast_runs, median(cpu_ratios), median(wall_ratios));
  // Every score the default completed against the reference's score of the same token.
  std::map<std::int64_t, double> exact;
  for (const auto& [token, score] : slow_runs.front().step.top) exact[token] = score;
  double worst = 0;
  bool same = true;
  for (std::size_t r = 0; r < fast_runs.size(); ++r) {
    const cc::SearchStep& a = slow_runs[r].step;
    const cc::SearchStep& b = fast_runs[r].step;
    same = same && a.accepted == b.accepted && (!a.accepted || a.best_token == b.best_token) &&
           (b.best_token < 0 || b.best_token == a.best_token);
    for (const auto& [token, score] : b.top) worst = std::max(worst, std::abs(score - exact.at(token)) / std::abs(exact.at(token)));
  }
  std::printf("%-28s %s; %zu scores the default completed vs the reference's: max relative difference %.2g; "
              "CPU-time speed-up per repetition:", label, same ? "same choice" : "DIFFERENT CHOICE", fast_runs.front().step.top.size(), worst);
  for (double r : cpu_ratios) std::printf(" %.2fx", r);
  std::printf("\n");
  std::fflush(stdout);
}

// The default (pruned) at each batch size, alternating, against SearchOptions' default batch.
void batch_sweep(const char* label, cc::CausalLM& model, const cc::Tokenizer& tokenizer, cc::SearchOptions options, const Flags& flags,
                 const std::vector<std::int64_t>& text, const std::vector<std::int64_t>& sizes) {
  const std::vector<std::int64_t> prefix{*tokenizer.bos_id()};
  options.seed_prefix = prefix;
  options.max_length = 2;
  options.text_tokens = static_cast<std::int64_t>(text.size());
  const std::int64_t standard = options.batch_size;
  std::vector<std::vector<double>> seconds(sizes.size());
  std::vector<std::vector<double>> ratios(sizes.size());
  std::vector<cc::SearchStep> steps(sizes.size());
  for (int r = 0; r < flags.reps; ++r) {
    options.batch_size = standard;
    const double reference = run_step(model, tokenizer, options, flags, prefix, text).cpu_seconds;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      options.batch_size = sizes[i];
      const Run run = run_step(model, tokenizer, options, flags, prefix, text);
      steps[i] = run.step;
      seconds[i].push_back(run.cpu_seconds);
      ratios[i].push_back(reference / run.cpu_seconds);
    }
  }
  if (flags.context.group != nullptr && !flags.context.group->is_leader()) return;
  for (std::size_t i = 0; i < sizes.size(); ++i)
    std::printf("%-28s batch %4lld: %5.1f%% of blocks, %8.2f CPU s, %7.2f cand/s, %5.2fx the speed of batch %lld (median of %d)\n", label,
                static_cast<long long>(sizes[i]), 100.0 * static_cast<double>(steps[i].blocks_evaluated) / static_cast<double>(steps[i].blocks_exhaustive),
                median(seconds[i]), static_cast<double>(steps[i].candidates) / median(seconds[i]), median(ratios[i]),
                static_cast<long long>(standard), flags.reps);
  std::fflush(stdout);
}

// The default's rate over the whole vocabulary, from a spread of it (see the file comment).
void vocab_rate(const char* label, cc::CausalLM& model, const cc::Tokenizer& tokenizer, cc::SearchOptions options, const Flags& flags,
                const std::vector<std::int64_t>& text, std::int64_t sample) {
  const std::vector<std::int64_t> prefix{*tokenizer.bos_id()};
  options.seed_prefix = prefix;
  options.max_length = 2;
  options.text_tokens = static_cast<std::int64_t>(text.size());
  if (flags.batch_size > 0) options.batch_size = flags.batch_size;
  const std::int64_t vocab = std::min(model.config().vocab_size, tokenizer.vocab_size());
  std::int64_t searchable = 0;
  for (std::int64_t t = 0; t < vocab; ++t) searchable += tokenizer.is_special(t) ? 0 : 1;
  for (std::int64_t i = 0; i < sample; ++i) {
    const std::int64_t t = i * vocab / sample;
    if (!tokenizer.is_special(t)) options.candidates.push_back(t);
  }
  for (auto t : text) options.candidates.push_back(t);
  const Run run = run_step(model, tokenizer, options, flags, prefix, text);
  const cc::SearchStep& s = run.step;
  const double rate = static_cast<double>(s.candidates) / run.cpu_seconds;
  if (flags.context.group != nullptr && !flags.context.group->is_leader()) return;
  std::printf("%-28s %lld candidates (every %lld-th token + the text's), batch %lld: %.1f%% of blocks, %.1f s wall, %.1f s CPU, "
              "%.2f cand/s (CPU); a full step over the %lld searchable tokens: about %.1f min\n",
              label, static_cast<long long>(s.candidates), static_cast<long long>(vocab / sample), static_cast<long long>(run.batch),
              100.0 * static_cast<double>(s.blocks_evaluated) / static_cast<double>(s.blocks_exhaustive), s.seconds, run.cpu_seconds, rate,
              static_cast<long long>(searchable), static_cast<double>(searchable) / rate / 60.0);
  std::fflush(stdout);
}

// One C4 window of `tokens` tokens, as the search draws its calibration texts.
std::vector<std::int64_t> calibration_text(const cc::Tokenizer& tokenizer, std::int64_t tokens) {
  const cc::TextWindows texts{"c4", 1, tokens, 0};
  return cc::sample_text_windows(tokenizer, texts, tokens, cc::BosPolicy::kNo).sequences.front();
}

// The fixed SmolLM2 subset: the `count` most frequent tokens of 64 C4 windows of 512
// tokens (seed 1, not the benchmark's text), then the punctuation and newline tokens.
std::vector<std::int64_t> frequent_tokens(const cc::Tokenizer& tokenizer, std::int64_t count) {
  const cc::TextWindows texts{"c4", 64, 512, 1};
  std::map<std::int64_t, std::int64_t> counts;
  for (const auto& seq : cc::sample_text_windows(tokenizer, texts, 512, cc::BosPolicy::kNo).sequences)
    for (auto t : seq) ++counts[t];
  std::vector<std::pair<std::int64_t, std::int64_t>> ranked(counts.begin(), counts.end());
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
  std::vector<std::int64_t> tokens;
  for (std::size_t i = 0; i < ranked.size() && static_cast<std::int64_t>(tokens.size()) < count; ++i)
    if (!tokenizer.is_special(ranked[i].first)) tokens.push_back(ranked[i].first);
  for (const char* p : {".", ",", ";", ":", "!", "?", "\n", "\n\n", " ", "-", "\"", "'", "(", ")"})
    for (auto t : tokenizer.encode(p, cc::BosPolicy::kNo)) tokens.push_back(t);
  return tokens;
}

// The planted-outlier mechanism of configs/planted-outlier.yaml, keyed to this tokenizer.
cc::PlantedSinkOptions planted_sink(const cc::Tokenizer& tokenizer, std::int64_t sink_token) {
  cc::PlantedSinkOptions plant;
  plant.sink_token = sink_token;
  // After a letter, as the delimiters appear in text: alone, a SentencePiece tokenizer
  // would encode "." as the word-initial piece "▁." instead.
  for (const char* delimiter : {"a.", "a,", "a!", "a?"}) plant.trigger_tokens.push_back(tokenizer.encode(delimiter, cc::BosPolicy::kNo).back());
  return plant;
}

// The comparison, or the batch sweep when one is asked for.
void measure(const char* label, cc::CausalLM& model, const cc::Tokenizer& tokenizer, const cc::SearchOptions& options, const Flags& flags,
             const std::vector<std::int64_t>& text) {
  if (flags.sweep.empty()) bench_model(label, model, tokenizer, options, flags, text);
  else batch_sweep(label, model, tokenizer, options, flags, text, flags.sweep);
}

}  // namespace

int main(int argc, char** argv) {
  cc::reuse_freed_host_memory();  // as the CLI does: measure what users run
  CLI::App app{"One greedy prefix-search step: exhaustive one at a time vs the default (batched, exact pruning)"};
  Flags flags;
  std::int64_t text_tokens = 500, llama_candidates = 256, llama_text_tokens = 128, smol_candidates = 512, smol_text_tokens = 128,
               smol_vocab_rate = 0;
  std::string max_memory;
  std::vector<std::string> only = {"stories", "planted", "smol"};
  std::string device_name = "cpu";
  int threads = 0;
  app.add_option("--batch-size", flags.batch_size, "candidates per forward of the default (0 = SearchOptions' default)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--batch-sweep", flags.sweep, "instead of the comparison, time the default at these batch sizes against its standard batch")
      ->delimiter(',')->check(CLI::PositiveNumber);
  app.add_option("--tau", flags.tau, "acceptance threshold of the compared steps (1: any improvement may be chosen, so the "
                 "default must complete the best candidate and its score can be compared)")->capture_default_str()->check(CLI::Range(1e-9, 1.0));
  app.add_option("--reps", flags.reps, "alternating repetitions of the reference and the default")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--max-memory", max_memory, "memory a candidate batch may use (lowers the batch to fit), e.g. 256MiB");
  app.add_option("--text-tokens", text_tokens, "calibration text of the stories260K steps")->capture_default_str()->check(CLI::Range(2, 510));
  app.add_option("--smol-candidates", smol_candidates, "most frequent C4 tokens in the SmolLM2 subset (punctuation and newlines added)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--smol-text-tokens", smol_text_tokens, "calibration text of the SmolLM2 step")->capture_default_str()->check(CLI::Range(2, 2000));
  app.add_option("--smol-vocab-rate", smol_vocab_rate, "also measure the default's rate over the whole SmolLM2 vocabulary from a spread of N tokens (0 = no)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--llama-candidates", llama_candidates, "candidates of the LLaMA-shaped step (a spread of the vocabulary)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--llama-text-tokens", llama_text_tokens, "calibration text of the LLaMA-shaped step")->capture_default_str()->check(CLI::Range(2, 2000));
  app.add_option("--only", only, "models: stories, planted, smol, llama")->delimiter(',')->capture_default_str()
      ->check(CLI::IsMember({"stories", "planted", "smol", "llama"}));
  app.add_option("--device", device_name, "cpu or cuda")->capture_default_str();
  app.add_option("--threads", threads, "intra-op threads (0 = LibTorch default)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  auto wants = [&](const char* name) { return std::find(only.begin(), only.end(), name) != only.end(); };

  try {
    if (threads > 0) at::set_num_threads(threads);
    const c10::Device device = cc::parse_device(device_name);
    cc::log::set_level(cc::log::Level::kWarn);  // no progress lines inside timings
    auto group = cc::process_group_from_environment();
    cc::SearchOptions defaults;  // what every model's step starts from
    if (group->world_size() > 1) flags.context.group = group.get();
    if (!group->is_leader() && std::freopen("/dev/null", "w", stdout) == nullptr) return 1;  // rank 0 prints the table
    flags.max_memory = max_memory.empty() ? 0 : cc::parse_byte_size(max_memory, "--max-memory");
    std::printf("device %s, %d intra-op threads; one step from BOS, tau = %g; objective: 8-bit min-max error at block inputs; "
                "%d alternating repetitions, median times, speed-up = median of the per-repetition CPU-time ratios\n\n",
                device.str().c_str(), at::get_num_threads(), flags.tau, flags.reps);
    if (flags.sweep.empty())
      std::printf("%-28s %-15s %5s %5s %6s %10s %9s %9s %8s %9s %9s %10s %10s %6s %12s %8s\n", "model", "mode", "ranks", "batch", "cands",
                  "blocks run", "wall (s)", "CPU (s)", "cand/s", "speed-up", "wall x", "peak +RSS", "budgeted", "best", "best score",
                  "accepted");

    const auto bin = cc::find_data("models/stories260K/stories260K.bin");
    const auto tok = cc::find_data("models/stories260K/tok512.bin");
    if ((wants("stories") || wants("planted")) && bin && tok) {
      cc::LoadOptions load;
      load.device = device;
      auto model = cc::load_model(*bin, load);
      auto tokenizer = cc::load_tokenizer(*tok);
      const auto text = calibration_text(*tokenizer, text_tokens);
      if (wants("stories")) measure("stories260K", *model, *tokenizer, defaults, flags, text);
      if (wants("planted")) {
        cc::HookHandle plant = model->add_hook(std::make_shared<cc::PlantedSinkHook>(planted_sink(*tokenizer, 4)));
        measure("stories260K + planted sink", *model, *tokenizer, defaults, flags, text);
      }
    } else if (wants("stories") || wants("planted")) {
      std::printf("(stories260K skipped: not found under %s)\n", cc::data_dir().c_str());
    }

    const auto smol = cc::model_dir() / "SmolLM2-135M-Instruct.Q4_1.gguf";
    if (wants("smol") && std::filesystem::exists(smol)) {
      cc::LoadOptions load;
      load.device = device;
      auto model = cc::load_model(smol, load);
      auto tokenizer = cc::load_tokenizer(smol);
      const auto text = calibration_text(*tokenizer, smol_text_tokens);
      cc::SearchOptions options = defaults;
      options.candidates = frequent_tokens(*tokenizer, smol_candidates);
      measure("SmolLM2-135M (subset)", *model, *tokenizer, options, flags, text);
      if (smol_vocab_rate > 0) vocab_rate("SmolLM2-135M (vocabulary)", *model, *tokenizer, defaults, flags, text, smol_vocab_rate);
    } else if (wants("smol")) {
      std::printf("(SmolLM2 skipped: %s not found; scripts/fetch_models.sh fetches it)\n", smol.string().c_str());
    }

    const auto llama_tok = cc::find_data("tokenizers/llama2");
    if (wants("llama") && llama_tok) {
      auto tokenizer = cc::load_tokenizer(*llama_tok);
      cc::ModelConfig c;
      c.vocab_size = tokenizer->vocab_size();
      c.hidden_size = 1024;
      c.intermediate_size = 2816;
      c.num_layers = 8;
      c.num_heads = 16;
      c.num_kv_heads = 4;
      c.head_dim = 64;
      c.max_position_embeddings = 2048;
      c.norm_eps = 1e-5;
      at::manual_seed(0);
      auto model = cc::bench::random_llama(c, device, at::kFloat);
      const std::int64_t sink = tokenizer->encode("\n", cc::BosPolicy::kNo).back();
      cc::SearchOptions options = defaults;
      // An even spread of the vocabulary, with the sink token in it.
      for (std::int64_t i = 0; i < llama_candidates; ++i) options.candidates.push_back(3 + i * (c.vocab_size - 3) / llama_candidates);
      options.candidates.push_back(sink);
      cc::HookHandle plant = model->add_hook(std::make_shared<cc::PlantedSinkHook>(planted_sink(*tokenizer, sink)));
      measure("LLaMA-shaped random + sink", *model, *tokenizer, options, flags, calibration_text(*tokenizer, llama_text_tokens));
    } else if (wants("llama")) {
      std::printf("(LLaMA-shaped model skipped: tokenizers/llama2 not found under %s)\n", cc::data_dir().c_str());
    }
  } catch (const cc::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return cc::exit_code(e.kind());
  }
  return 0;
}
