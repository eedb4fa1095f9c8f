#include "cushioncache/search/prefix_searcher.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>
#include <tuple>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/core/files.h"
#include "cushioncache/core/interrupt.h"
#include "cushioncache/core/log.h"
#include "cushioncache/core/memory_usage.h"
#include "cushioncache/core/progress.h"
#include "cushioncache/io/json_file.h"
#include "cushioncache/tokenizer/text_windows.h"

namespace cushioncache {
namespace {

constexpr std::size_t kTopKept = 16;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

nlohmann::json step_json(const SearchStep& s) {
  nlohmann::json top = nlohmann::json::array();
  for (const auto& [token, score] : s.top) top.push_back({token, score});
  return {{"step", s.step},
          {"prefix_before", s.prefix_before},
          {"prefix_score", s.prefix_score},
          {"best_token", s.best_token},
          // null: pruning dropped every candidate above tau * L(prefix), none has a score
          {"best_score", s.best_token >= 0 ? nlohmann::json(s.best_score) : nlohmann::json(nullptr)},
          {"accepted", s.accepted},
          {"candidates", s.candidates},
          {"blocks_evaluated", s.blocks_evaluated},
          {"blocks_exhaustive", s.blocks_exhaustive},
          {"top", top},
          {"seconds", s.seconds}};
}

SearchStep step_from_json(const nlohmann::json& j) {
  SearchStep s;
  s.step = j.at("step").get<int>();
  s.prefix_before = j.at("prefix_before").get<std::vector<std::int64_t>>();
  s.prefix_score = j.at("prefix_score").get<double>();
  s.best_token = j.at("best_token").get<std::int64_t>();
  s.best_score = j.at("best_score").is_null() ? std::numeric_limits<double>::infinity() : j.at("best_score").get<double>();
  s.accepted = j.at("accepted").get<bool>();
  s.candidates = j.at("candidates").get<std::int64_t>();
  s.blocks_evaluated = j.at("blocks_evaluated").get<std::int64_t>();
  s.blocks_exhaustive = j.at("blocks_exhaustive").get<std::int64_t>();
  for (const auto& t : j.at("top")) s.top.emplace_back(t.at(0).get<std::int64_t>(), t.at(1).get<double>());
  s.seconds = j.at("seconds").get<double>();
  return s;
}

// Every rank's (token, score) list, `slots` entries at most each, on every rank: each
// fills its own slice of a zeroed buffer and a sum puts the slices together.
std::vector<std::pair<std::int64_t, double>> gather_scores(ProcessGroup& group, const std::vector<std::pair<std::int64_t, double>>& mine,
                                                           std::size_t slots) {
  const auto world = static_cast<std::size_t>(group.world_size()), rank = static_cast<std::size_t>(group.rank());
  at::Tensor buffer = at::zeros({static_cast<std::int64_t>(world * slots), 3}, at::kDouble);  // present, token, score
  auto rows = buffer.accessor<double, 2>();
  for (std::size_t i = 0; i < std::min(slots, mine.size()); ++i) {
    const auto row = static_cast<std::int64_t>(rank * slots + i);
    rows[row][0] = 1;
    rows[row][1] = static_cast<double>(mine[i].first);
    rows[row][2] = mine[i].second;
  }
  group.all_reduce(buffer, ReduceOp::kSum, "gathering the search's scores");
  std::vector<std::pair<std::int64_t, double>> all;
  for (std::int64_t r = 0; r < buffer.size(0); ++r)
    if (rows[r][0] == 1) all.emplace_back(static_cast<std::int64_t>(rows[r][1]), rows[r][2]);
  return all;
}

// The best (score, token) over the ranks: the lowest score, the lowest token among equal
// scores (as on one process). One collective: every rank's pair reaches every rank, since
// a minimum alone cannot order pairs.
std::pair<double, std::int64_t> share_incumbent(ProcessGroup& group, double score, std::int64_t token) {
  const auto all = gather_scores(group, {{token, score}}, 1);
  double global = std::numeric_limits<double>::infinity();
  for (const auto& [t, sc] : all) global = std::min(global, sc);
  std::int64_t best = -1;
  for (const auto& [t, sc] : all)
    if (t >= 0 && sc == global && (best < 0 || t < best)) best = t;
  return {global, best};
}

}  // namespace

nlohmann::json to_json(const SearchOptions& o) {
  return {{"seed_prefix", o.seed_prefix}, {"max_length", o.max_length}, {"tau", o.tau},
          {"text_tokens", o.text_tokens}, {"data", o.data},              {"seed", o.seed},
          {"objective", to_json(o.objective)}, {"batch_size", o.batch_size}, {"prune", o.prune},
          {"exclude_special", o.exclude_special}, {"candidates", o.candidates}, {"max_memory", o.max_memory}};
}

std::int64_t candidate_working_bytes(const CausalLM& model, std::int64_t prefix_tokens, std::int64_t text_tokens, std::int64_t element_size) {
  const std::int64_t tokens = text_tokens + 1;  // the candidate, then the text
  return model.block_working_bytes(tokens, prefix_tokens + tokens, element_size);
}

nlohmann::json to_json(const SearchResult& r) {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : r.steps) steps.push_back(step_json(s));
  return {{"prefix", r.prefix}, {"steps", steps}, {"stop_reason", r.stop_reason}, {"seconds", r.seconds}};
}

SearchOptions resolve_search_options(SearchOptions options, const CausalLM& model, const Tokenizer& tokenizer) {
  if (!(options.tau > 0 && options.tau <= 1)) throw_error(ErrorKind::kInvalidConfig, "search tau = {} must be in (0, 1]", options.tau);
  if (options.max_length <= static_cast<std::int64_t>(options.seed_prefix.size()))
    throw_error(ErrorKind::kInvalidConfig, "search max_length {} leaves no room after the {}-token seed prefix", options.max_length,
                options.seed_prefix.size());
  // The candidate stands at the prefix's last position, so the text has the room after max_length.
  const std::int64_t room = room_after_prefix(model.config().max_position_embeddings, options.max_length);
  if (options.text_tokens == 0) options.text_tokens = std::min<std::int64_t>(512, room);
  if (options.batch_size < 1 || options.text_tokens < 2)
    throw_error(ErrorKind::kInvalidConfig, "search batch_size must be >= 1 and text_tokens >= 2");
  if (options.text_tokens > room)
    throw_error(ErrorKind::kInvalidConfig, "search max_length {} + text_tokens {} exceed the model's context of {}", options.max_length,
                options.text_tokens, model.config().max_position_embeddings);
  if (options.max_memory < 0) throw_error(ErrorKind::kInvalidConfig, "search max_memory must be >= 0 (0 = no bound)");
  if (options.max_memory > 0) {
    // The last step is the widest: its candidates sit behind the longest prefix.
    const std::int64_t per_candidate = candidate_working_bytes(model, options.max_length - 1, options.text_tokens,
                                                               static_cast<std::int64_t>(c10::elementSize(model.dtype())));
    const std::int64_t fits = options.max_memory / per_candidate;
    if (fits < 1)
      throw_error(ErrorKind::kInvalidConfig, "search max_memory {} is less than one candidate needs (about {} for {} text tokens); "
                  "raise it or lower text_tokens", format_bytes(options.max_memory), format_bytes(per_candidate), options.text_tokens);
    if (fits < options.batch_size) {
      log::info("search: {} candidates per batch fit in max_memory {} (about {} each)", fits, format_bytes(options.max_memory),
                format_bytes(per_candidate));
      options.batch_size = fits;
    }
  }
  const std::int64_t vocab = std::min(model.config().vocab_size, tokenizer.vocab_size());
  for (auto t : options.candidates)
    if (t < 0 || t >= vocab) throw_error(ErrorKind::kInvalidConfig, "search candidate {} is outside the vocabulary [0, {})", t, vocab);
  return options;
}

PrefixSearcher::PrefixSearcher(CausalLM& model, const Tokenizer& tokenizer, SearchOptions options, RunContext context)
    : model_(model), tokenizer_(tokenizer), options_(resolve_search_options(std::move(options), model, tokenizer)), context_(std::move(context)) {
  if (context_.resume && context_.state_file.empty()) throw_error(ErrorKind::kInvalidArgument, "resume needs a search state file");
  const std::int64_t vocab = std::min(model_.config().vocab_size, tokenizer_.vocab_size());
  if (options_.candidates.empty()) {
    for (std::int64_t t = 0; t < vocab; ++t)
      if (!(options_.exclude_special && tokenizer_.is_special(t))) vocabulary_.push_back(t);
  } else {
    vocabulary_ = options_.candidates;
  }
  std::sort(vocabulary_.begin(), vocabulary_.end());
  vocabulary_.erase(std::unique(vocabulary_.begin(), vocabulary_.end()), vocabulary_.end());
  if (vocabulary_.empty()) throw_error(ErrorKind::kInvalidConfig, "the search has no candidate tokens");
}

std::vector<std::int64_t> PrefixSearcher::candidate_order(const std::vector<std::int64_t>& first) const {
  std::vector<std::int64_t> order;
  std::set<std::int64_t> seen;
  for (auto t : first)
    if (std::binary_search(vocabulary_.begin(), vocabulary_.end(), t) && seen.insert(t).second) order.push_back(t);
  for (auto t : vocabulary_)
    if (!seen.count(t)) order.push_back(t);
  return order;
}

double PrefixSearcher::prefix_score(const KVCache* prefix_kv, const std::vector<std::int64_t>& text) {
  auto hook = std::make_shared<ObjectiveHook>(options_.objective);
  HookHandle handle = model_.add_hook(hook);
  ForwardOptions fo;
  fo.past = prefix_kv;
  fo.last_logits_only = true;
  (void)model_.forward(at::tensor(text, at::kLong).unsqueeze(0), fo);
  const double score = hook->take()[0].item<double>();
  if (!std::isfinite(score))
    throw_error(ErrorKind::kNumerical, "prefix search: the objective of the current prefix is {} (NaN or Inf in the activations)", score);
  return score;
}

SearchStep PrefixSearcher::score_step(const std::vector<std::int64_t>& prefix, const std::vector<std::int64_t>& text,
                                      const std::vector<std::int64_t>& first_candidates) {
  c10::NoGradGuard no_grad;
  const auto start = std::chrono::steady_clock::now();
  const int layers = static_cast<int>(model_.config().num_layers);
  SearchStep step;
  step.prefix_before = prefix;
  KVCache prefix_kv;
  if (!prefix.empty()) prefix_kv = compute_kv_cache(model_, prefix);
  const KVCache* past = prefix.empty() ? nullptr : &prefix_kv;
  step.prefix_score = prefix_score(past, text);
  const double threshold = options_.tau * step.prefix_score;

  const std::vector<std::int64_t> order = candidate_order(first_candidates);
  step.candidates = static_cast<std::int64_t>(order.size());
  step.blocks_exhaustive = step.candidates * layers;
  double incumbent = std::numeric_limits<double>::infinity();
  std::int64_t incumbent_token = -1;
  std::vector<std::pair<std::int64_t, double>> complete;

  // This rank's share: every world-th candidate, so the previous step's best (first in
  // the order) spread over the ranks. Every rank runs the same number of batches (some
  // empty at the end) because each batch ends in a collective.
  const std::size_t world = context_.group != nullptr ? static_cast<std::size_t>(context_.group->world_size()) : 1;
  const std::size_t rank = context_.group != nullptr ? static_cast<std::size_t>(context_.group->rank()) : 0;
  std::vector<std::int64_t> mine;
  for (std::size_t i = rank; i < order.size(); i += world) mine.push_back(order[i]);
  const std::size_t batch = static_cast<std::size_t>(options_.batch_size);
  const std::size_t batches = ((order.size() + world - 1) / world + batch - 1) / batch;

  auto hook = std::make_shared<ObjectiveHook>(options_.objective);
  HookHandle handle = model_.add_hook(hook);
  const at::Tensor text_ids = at::tensor(text, at::kLong);
  Progress progress(fmt::format("search step {}", prefix.size() - options_.seed_prefix.size() + 1), static_cast<std::int64_t>(mine.size()),
                    "cand");
  // Only block inputs scored (the default): block L-1's input completes a candidate's
  // score, and block L-1 itself changes nothing that is scored, so it never runs.
  const auto& sites = options_.objective.sites;
  const bool scores_inside_blocks = std::any_of(sites.begin(), sites.end(), [](Site s) { return s != Site::kBlockInput; });
  const int blocks_needed = scores_inside_blocks ? layers : layers - 1;
  for (std::size_t b = 0; b < batches; ++b) {
    throw_if_interrupted("the prefix search");
    const std::size_t first = b * batch;
    const std::size_t count = first < mine.size() ? std::min(mine.size() - first, batch) : 0;
    if (count > 0) {
      at::Tensor tokens = at::tensor(std::vector<std::int64_t>(mine.begin() + static_cast<std::ptrdiff_t>(first),
                                                               mine.begin() + static_cast<std::ptrdiff_t>(first + count)),
                                     at::kLong);
      // Each row: the candidate (a prefix position, outside the objective), then the text.
      at::Tensor ids = at::cat({tokens.unsqueeze(1), text_ids.unsqueeze(0).expand({static_cast<std::int64_t>(count), -1})}, 1);
      ForwardOptions fo;
      fo.past = past;
      fo.prefix_tokens = 1;
      ForwardState state = model_.prepare(ids, fo);
      at::Tensor hidden = model_.embed(ids.to(model_.device()), state);
      at::Tensor partial = at::zeros({static_cast<std::int64_t>(count)}, at::TensorOptions().dtype(at::kDouble).device(model_.device()));
      at::Tensor alive = tokens;  // candidate token of each surviving row
      (void)hook->take();
      auto add_terms = [&] {
        const at::Tensor terms = hook->take();
        if (terms.defined()) partial = partial + terms;
      };
      // After the terms of `block` joined the partial sums: a row whose partial sum already
      // exceeds the bound cannot be selected and leaves the batch (`may_prune`: work
      // remains for it). A NaN would compare false against every bound and vanish from the
      // ranking, so it stops the search instead; both verdicts come back in one device sync.
      auto settle = [&](int block, bool may_prune) {
        const at::Tensor finite = at::isfinite(partial);
        const at::Tensor keep = may_prune ? partial.le(std::min(incumbent, threshold)) : finite;
        const at::Tensor verdict = at::stack({finite.all(), keep.all()}).cpu();
        if (!verdict[0].item<bool>()) {
          const std::int64_t bad = finite.logical_not().nonzero()[0][0].item<std::int64_t>();
          throw_error(ErrorKind::kNumerical, "prefix search: NaN or Inf in the activations of block {} behind candidate token {}", block,
                      alive[bad].item<std::int64_t>());
        }
        if (!may_prune || verdict[1].item<bool>()) return;
        at::Tensor rows = keep.nonzero().squeeze(1);
        hidden = hidden.index_select(0, rows);
        state = model_.select_rows(state, rows);
        partial = partial.index_select(0, rows);
        alive = alive.index_select(0, rows.cpu());
      };
      if (!options_.prune) {
        // The reference: every candidate through every block, as a plain forward runs it.
        for (int l = 0; l < layers; ++l) {
          hidden = model_.run_block(l, hidden, state);
          add_terms();
          step.blocks_evaluated += alive.numel();
          settle(l, false);
        }
      } else {
        // Block l's input term is known before block l runs: the bound is checked there, so
        // a candidate leaves without paying for the block.
        for (int l = 0; l < layers && alive.numel() > 0; ++l) {
          hidden = model_.enter_block(l, hidden, state);
          add_terms();
          settle(l, l < blocks_needed);
          if (l >= blocks_needed || alive.numel() == 0) break;
          hidden = model_.run_block(l, hidden, state);
          step.blocks_evaluated += alive.numel();
          if (scores_inside_blocks) {
            add_terms();
            settle(l, l + 1 < layers);
          }
        }
      }
      const at::Tensor scores = partial.cpu();
      for (std::int64_t i = 0; i < alive.numel(); ++i) {
        const std::int64_t token = alive[i].item<std::int64_t>();
        const double score = scores[i].item<double>();
        complete.emplace_back(token, score);
        if (score < incumbent || (score == incumbent && token < incumbent_token)) {
          incumbent = score;
          incumbent_token = token;
        }
      }
    }
    if (world > 1) std::tie(incumbent, incumbent_token) = share_incumbent(*context_.group, incumbent, incumbent_token);
    progress.set_status(incumbent_token >= 0 ? fmt::format("best {} ({:.4g}, {:.3f} of L(prefix))", incumbent_token, incumbent,
                                                           incumbent / step.prefix_score)
                                             : "no candidate under the threshold yet");
    progress.advance(static_cast<std::int64_t>(count));
  }
  progress.finish();
  auto by_score = [](const auto& a, const auto& b) { return a.second != b.second ? a.second < b.second : a.first < b.first; };
  std::sort(complete.begin(), complete.end(), by_score);
  if (complete.size() > kTopKept && options_.prune) complete.resize(kTopKept);
  if (world > 1) {
    const std::size_t slots = options_.prune ? kTopKept : (order.size() + world - 1) / world;
    complete = gather_scores(*context_.group, complete, slots);
    std::sort(complete.begin(), complete.end(), by_score);
    if (complete.size() > kTopKept && options_.prune) complete.resize(kTopKept);
    at::Tensor blocks = at::tensor({static_cast<double>(step.blocks_evaluated)}, at::kDouble);
    context_.group->all_reduce(blocks, ReduceOp::kSum, "the search's block count");
    step.blocks_evaluated = static_cast<std::int64_t>(blocks.item<double>());
  }
  step.top = complete;
  step.best_token = incumbent_token;
  step.best_score = incumbent;
  step.accepted = incumbent_token >= 0 && incumbent < threshold;
  step.seconds = seconds_since(start);
  return step;
}

void PrefixSearcher::save_state(const SearchResult& result) const {
  if (!context_.writes_state()) return;
  const std::string text = nlohmann::json{{"options", to_json(options_)}, {"result", to_json(result)}}.dump(2) + "\n";
  write_file_atomically(context_.state_file, [&](std::ostream& out) { out << text; });
}

SearchResult PrefixSearcher::run() {
  const auto start = std::chrono::steady_clock::now();
  InterruptGuard interrupts;
  SearchResult result;
  result.prefix = options_.seed_prefix;
  if (context_.resume) {
    if (std::filesystem::exists(context_.state_file)) {
      const nlohmann::json saved = read_json_file(context_.state_file);
      with_json_context(context_.state_file, [&] {
        if (saved.at("options") != to_json(options_))
          throw_error(ErrorKind::kMismatch, "the saved search used other settings; remove the file or run with the same settings");
        const auto& r = saved.at("result");
        result.prefix = r.at("prefix").get<std::vector<std::int64_t>>();
        for (const auto& s : r.at("steps")) result.steps.push_back(step_from_json(s));
        result.stop_reason = r.at("stop_reason").get<std::string>();
        result.seconds = r.at("seconds").get<double>();
      });
      log::info("resuming the search after step {} with prefix of {} tokens", result.steps.size(), result.prefix.size());
      if (!result.stop_reason.empty()) return result;  // it had finished
    }
  }
  // One calibration text per step, all drawn up front from the seed: a resumed search sees
  // the same texts as an uninterrupted one.
  const TextWindows texts{options_.data, options_.max_length, options_.text_tokens, options_.seed};
  const SampledWindows calibration = sample_text_windows(tokenizer_, texts, options_.text_tokens, BosPolicy::kNo);

  const double previous_seconds = result.seconds;
  while (result.stop_reason.empty()) {
    if (static_cast<std::int64_t>(result.prefix.size()) >= options_.max_length) {
      result.stop_reason = fmt::format("reached max_length {}", options_.max_length);
      break;
    }
    const std::size_t k = result.steps.size();
    std::vector<std::int64_t> first;
    if (!result.steps.empty())
      for (const auto& [token, score] : result.steps.back().top) first.push_back(token);
    SearchStep step = score_step(result.prefix, calibration.sequences[k % calibration.sequences.size()], first);
    step.step = static_cast<int>(k + 1);
    log::info("search step {}: best token {}, L = {:.5g} vs L(prefix) = {:.5g} ({:.3f}); {} candidates, {:.1f}% of blocks, {:.1f} s{}",
              step.step, step.best_token >= 0 ? describe_tokens(tokenizer_, {step.best_token}) : "none", step.best_score,
              step.prefix_score, step.best_score / step.prefix_score, step.candidates,
              100.0 * static_cast<double>(step.blocks_evaluated) / static_cast<double>(step.blocks_exhaustive), step.seconds,
              step.accepted ? ": accepted" : ": rejected");
    if (step.accepted) result.prefix.push_back(step.best_token);
    else if (step.best_token < 0)
      result.stop_reason = fmt::format("step {}: no candidate reached tau = {} (all pruned above it)", step.step, options_.tau);
    else
      result.stop_reason = fmt::format("step {}: no candidate reached tau = {} (best ratio {:.3f})", step.step, options_.tau,
                                       step.best_score / step.prefix_score);
    result.steps.push_back(std::move(step));
    result.seconds = previous_seconds + seconds_since(start);
    save_state(result);
  }
  result.seconds = previous_seconds + seconds_since(start);
  save_state(result);
  return result;
}

}  // namespace cushioncache
