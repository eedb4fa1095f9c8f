// What do batching and exact pruning buy the prefix search? One greedy step (prefix = BOS,
// one C4 text, every candidate scored) on
//   1. stories260K, the real llama2.c model (no outliers of its own),
//   2. stories260K with the planted sink (analysis/planted_sink.h), where one candidate
//      wins by far, as in LLaMA-class models,
//   3. a LLaMA-shaped model with random weights (hidden 1024, 8 layers, 16 heads of which
//      4 KV heads, MLP 2816, the 32000-token LLaMA-2 tokenizer), with a planted sink too;
//      a subset of the vocabulary (--llama-candidates), to keep the run in minutes,
// each as exhaustive one-candidate-at-a-time, batched, and batched + pruning, in one run.
// All three must decide the same (the accepted token, or none when no candidate reaches
// tau = 0.5); the blocks run and candidates/s show what each costs. Each row also shows
// how far the process's resident memory rose above where it stood before the step (CPU;
// freed memory stays resident for reuse, as in the CLI, so a row after another of the same
// batch rises little: compare the first row of each batch size)
// and the working memory the search budgets for the batch (batch x candidate_working_bytes,
// what --max-memory divides); with --max-memory the batched rows run with the batch that
// budget allows. Started as several ranks (scripts/launch_ranks.sh --nproc N -- bench_search),
// each step's candidates are split over them (docs/scale.md); rank 0 prints the rows, with
// the number of ranks in the "ranks" column and its own memory.
//
//   bench_search [--batch-size 16] [--max-memory 1GiB] [--text-tokens 500] [--llama-candidates 256]
//                [--llama-text-tokens 128] [--only stories,planted,llama] [--device cpu]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cushioncache/core/allocator.h"
#include "cushioncache/analysis/planted_sink.h"
#include "cushioncache/core/data_dir.h"
#include "cushioncache/core/error.h"
#include "cushioncache/core/log.h"
#include "cushioncache/core/memory_usage.h"
#include "cushioncache/distributed/process_group.h"
#include "cushioncache/model/loader.h"
#include "cushioncache/quant/calibration.h"
#include "cushioncache/search/prefix_searcher.h"
#include "bench_common.h"

namespace cc = cushioncache;

namespace {

struct Mode {
  const char* name;
  bool batched;
  bool prune;
};
constexpr Mode kModes[] = {{"exhaustive, one at a time", false, false}, {"batched", true, false}, {"batched + pruning", true, true}};

// One step from BOS under every mode; prints a row each.
void bench_model(const char* label, cc::CausalLM& model, const cc::Tokenizer& tokenizer, cc::SearchOptions options,
                 std::int64_t batch_size, std::int64_t max_memory, std::int64_t text_tokens) {
  cc::CalibrationOptions texts;
  texts.samples = 1;
  texts.seq_len = text_tokens;
  const auto text = cc::build_calibration_set(tokenizer, texts, text_tokens, cc::BosPolicy::kNo).sequences.front();
  const std::vector<std::int64_t> prefix{*tokenizer.bos_id()};
  options.seed_prefix = prefix;
  options.max_length = 2;
  options.text_tokens = text_tokens;
  double baseline_seconds = 0;
  std::int64_t baseline_choice = -1;
  for (const Mode& mode : kModes) {
    options.batch_size = mode.batched ? batch_size : 1;
    options.max_memory = mode.batched ? max_memory : 0;
    options.prune = mode.prune;
    cc::PrefixSearcher searcher(model, tokenizer, options);
    const std::int64_t batch = searcher.options().batch_size;
    const std::int64_t budget = batch * cc::candidate_working_bytes(model.config(), static_cast<std::int64_t>(prefix.size()), text_tokens,
                                                                    static_cast<std::int64_t>(c10::elementSize(model.dtype())));
    const bool measured = !model.device().is_cuda() && cc::reset_peak_resident();
    const std::int64_t before = cc::resident_bytes();
    const cc::SearchStep step = searcher.score_step(prefix, text);
    const bool prints = options.group == nullptr || options.group->is_leader();
    const int ranks = options.group != nullptr ? options.group->world_size() : 1;
    const std::string peak = measured ? cc::format_bytes(cc::peak_resident_bytes() - before) : "-";
    // What the step decides: the accepted token, or none (the search would stop here).
    // Pruning drops every candidate above tau * L(prefix), so only the decision, not
    // the best rejected token, is comparable across modes.
    const std::int64_t choice = step.accepted ? step.best_token : -1;
    if (!mode.batched) {
      baseline_seconds = step.seconds;
      baseline_choice = choice;
    }
    if (!prints) continue;
    std::printf("%-30s %-26s %5d %6lld %6lld %9.1f%% %9.2f %9.1f %8.2fx %11s %11s %8s%s\n", label, mode.name, ranks,
                static_cast<long long>(batch), static_cast<long long>(step.candidates),
                100.0 * static_cast<double>(step.blocks_evaluated) / static_cast<double>(step.blocks_exhaustive), step.seconds,
                static_cast<double>(step.candidates) / step.seconds, baseline_seconds / step.seconds,
                peak.c_str(), cc::format_bytes(budget).c_str(), choice >= 0 ? std::to_string(choice).c_str() : "none", choice == baseline_choice ? "" : "  DIFFERENT DECISION");
    std::fflush(stdout);
  }
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

}  // namespace

int main(int argc, char** argv) {
  cc::reuse_freed_host_memory();  // as the CLI does: measure what users run
  CLI::App app{"One greedy prefix-search step: exhaustive vs batched vs batched + exact pruning"};
  std::int64_t batch_size = 16, text_tokens = 500, llama_candidates = 256, llama_text_tokens = 128;
  std::string max_memory;
  std::vector<std::string> only = {"stories", "planted", "llama"};
  std::string device_name = "cpu";
  int threads = 0;
  app.add_option("--batch-size", batch_size, "candidates per forward when batched")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--max-memory", max_memory, "memory a candidate batch may use (lowers the batch to fit), e.g. 256MiB");
  app.add_option("--text-tokens", text_tokens, "calibration text of the stories260K steps")->capture_default_str()->check(CLI::Range(2, 510));
  app.add_option("--llama-candidates", llama_candidates, "candidates of the LLaMA-shaped step (a spread of the vocabulary)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--llama-text-tokens", llama_text_tokens, "calibration text of the LLaMA-shaped step")->capture_default_str()->check(CLI::Range(2, 2000));
  app.add_option("--only", only, "models: stories, planted, llama")->delimiter(',')->capture_default_str()
      ->check(CLI::IsMember({"stories", "planted", "llama"}));
  app.add_option("--device", device_name, "cpu or cuda")->capture_default_str();
  app.add_option("--threads", threads, "intra-op threads (0 = LibTorch default)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  auto wants = [&](const char* name) { return std::find(only.begin(), only.end(), name) != only.end(); };

  try {
    if (threads > 0) at::set_num_threads(threads);
    const c10::Device device = cc::parse_device(device_name);
    cc::log::set_level(cc::log::Level::kWarn);  // no progress lines inside timings
    auto group = cc::process_group_from_environment();
    cc::SearchOptions distributed;
    if (group->world_size() > 1) distributed.group = group.get();
    if (!group->is_leader() && std::freopen("/dev/null", "w", stdout) == nullptr) return 1;  // rank 0 prints the table
    std::printf("device %s, %d intra-op threads; one step from BOS; objective: 8-bit min-max error at block inputs\n\n",
                device.str().c_str(), at::get_num_threads());
    const std::int64_t budget = max_memory.empty() ? 0 : cc::parse_byte_size(max_memory, "--max-memory");
    std::printf("%-30s %-26s %5s %6s %6s %10s %9s %9s %9s %11s %11s %8s\n", "model", "mode", "ranks", "batch", "cands", "blocks run", "time (s)", "cand/s",
                "speed-up", "peak +RSS", "budgeted", "accepted");

    const auto bin = cc::find_data("models/stories260K/stories260K.bin");
    const auto tok = cc::find_data("models/stories260K/tok512.bin");
    if ((wants("stories") || wants("planted")) && bin && tok) {
      cc::LoadOptions load;
      load.device = device;
      auto model = cc::load_model(*bin, load);
      auto tokenizer = cc::load_tokenizer(*tok);
      if (wants("stories")) bench_model("stories260K", *model, *tokenizer, distributed, batch_size, budget, text_tokens);
      if (wants("planted")) {
        cc::HookHandle plant = model->add_hook(std::make_shared<cc::PlantedSinkHook>(planted_sink(*tokenizer, 4)));
        bench_model("stories260K + planted sink", *model, *tokenizer, distributed, batch_size, budget, text_tokens);
      }
    } else if (wants("stories") || wants("planted")) {
      std::printf("(stories260K skipped: not found under %s)\n", cc::data_dir().c_str());
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
      cc::SearchOptions options = distributed;
      // An even spread of the vocabulary, with the sink token in it.
      for (std::int64_t i = 0; i < llama_candidates; ++i) options.candidates.push_back(3 + i * (c.vocab_size - 3) / llama_candidates);
      options.candidates.push_back(sink);
      cc::HookHandle plant = model->add_hook(std::make_shared<cc::PlantedSinkHook>(planted_sink(*tokenizer, sink)));
      bench_model("LLaMA-shaped random + sink", *model, *tokenizer, options, batch_size, budget, llama_text_tokens);
    } else if (wants("llama")) {
      std::printf("(LLaMA-shaped model skipped: tokenizers/llama2 not found under %s)\n", cc::data_dir().c_str());
    }
  } catch (const cc::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return cc::exit_code(e.kind());
  }
  return 0;
}
