// CushionCache's greedy prefix search (the paper's step 1), made fast and exact:
//   - every candidate token t is scored as L(prefix + t) on a fresh calibration text per
//     step; the best is accepted if L < tau * L(prefix), else the search stops;
//   - the current prefix's KV is computed once per step and shared by all candidates,
//     which run in batches;
//   - exact pruning: the objective is a sum of non-negative per-block terms, so a candidate
//     whose partial sum exceeds the best complete score so far (or the acceptance
//     threshold) cannot be selected and leaves the batch. Block l's input term is known
//     before block l runs (CausalLM::enter_block), so the check comes before the block is
//     paid for, and with only block inputs scored the last block never runs (nothing
//     after it is scored). The previous step's best candidates run first, so the bound is
//     tight early. The selected tokens and every completed score are those of exhaustive
//     search (tested); prune = false runs that reference, every block for every candidate.
//   - after every step the state is saved (atomically); Ctrl-C stops between batches with
//     the state saved, and resume continues after the last completed step.
//   - across processes (RunContext::group): each rank scores every world_size-th
//     candidate; after every batch the ranks share their best complete score, so pruning
//     is as tight as on one process, and the step ends with the same best token.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cushioncache/distributed/run_context.h"
#include "cushioncache/model/causal_lm.h"
#include "cushioncache/search/objective.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache {

struct SearchOptions {
  std::vector<std::int64_t> seed_prefix;  // tokens the search starts from, e.g. {BOS}
  std::int64_t max_length = 8;            // prefix length at most, seed included
  double tau = 0.5;                       // accept only if L(prefix + t) < tau * L(prefix)
  std::int64_t text_tokens = 0;           // calibration text per step; 0 = min(512, context - max_length)
  std::string data = "c4";                // corpus name or path (io/corpus.h)
  std::uint64_t seed = 0;
  ObjectiveOptions objective;
  std::int64_t batch_size = 16;           // candidates per forward (the CPU optimum, bench_search; raise on a GPU)
  std::int64_t max_memory = 0;            // bytes a candidate batch may use; lowers batch_size to fit (0 = no bound)
  bool prune = true;                      // false: the exhaustive reference, every block for every candidate
  bool exclude_special = true;            // BOS/EOS/control tokens are never candidates
  std::vector<std::int64_t> candidates;   // empty = the whole vocabulary
};

nlohmann::json to_json(const SearchOptions& options);

// The settings as they will run on `model`: text_tokens 0 worked out, batch_size lowered to
// fit max_memory, every value checked (kInvalidConfig naming the setting). The searcher
// runs it; a pipeline runs it before any work, so settings that do not fit the model fail
// in a second.
SearchOptions resolve_search_options(SearchOptions options, const CausalLM& model, const Tokenizer& tokenizer);

// The working memory one candidate row needs while a block runs (the model family's
// count, CausalLM::block_working_bytes, for the candidate and the text behind the
// prefix), in bytes, for elements of `element_size`: what max_memory is divided by.
// bench_search prints it beside the measured peak.
std::int64_t candidate_working_bytes(const CausalLM& model, std::int64_t prefix_tokens, std::int64_t text_tokens, std::int64_t element_size);

struct SearchStep {
  int step = 0;
  std::vector<std::int64_t> prefix_before;
  double prefix_score = 0;        // L(prefix) on this step's text
  std::int64_t best_token = -1;
  double best_score = 0;          // L(prefix + best)
  bool accepted = false;
  std::int64_t candidates = 0;
  std::int64_t blocks_evaluated = 0;   // candidate-blocks actually run
  std::int64_t blocks_exhaustive = 0;  // candidates x layers
  std::vector<std::pair<std::int64_t, double>> top;  // the best complete scores, lowest first
  double seconds = 0;
};

struct SearchResult {
  std::vector<std::int64_t> prefix;
  std::vector<SearchStep> steps;
  std::string stop_reason;
  double seconds = 0;
};

nlohmann::json to_json(const SearchResult& result);

class PrefixSearcher {
 public:
  // The context's state file holds the progress after every step (JSON, by the leader);
  // its group shares the candidates of every step.
  PrefixSearcher(CausalLM& model, const Tokenizer& tokenizer, SearchOptions options, RunContext context = {});

  // Runs (or, with context.resume, continues from the state file) until a step is
  // rejected or the prefix reaches max_length.
  SearchResult run();

  // One step on a given text: L(prefix) and the best candidate (all scores in `top` when
  // exhaustive). Exposed for tests and benchmarks.
  SearchStep score_step(const std::vector<std::int64_t>& prefix, const std::vector<std::int64_t>& text,
                        const std::vector<std::int64_t>& first_candidates = {});

  const SearchOptions& options() const { return options_; }

 private:
  double prefix_score(const KVCache* prefix_kv, const std::vector<std::int64_t>& text);
  std::vector<std::int64_t> candidate_order(const std::vector<std::int64_t>& first) const;
  void save_state(const SearchResult& result) const;

  CausalLM& model_;
  const Tokenizer& tokenizer_;
  SearchOptions options_;
  RunContext context_;
  std::vector<std::int64_t> vocabulary_;
};

}  // namespace cushioncache
