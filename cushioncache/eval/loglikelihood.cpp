#include "cushioncache/eval/loglikelihood.h"

#include <algorithm>
#include <cstdint>
#include <map>

#include <ATen/ATen.h>

#include "cushioncache/core/error.h"
#include "cushioncache/core/progress.h"
#include "cushioncache/eval/logprobs.h"

namespace cushioncache {

TokenizedRequest encode_pair(const Tokenizer& tokenizer, const std::string& context, const std::string& continuation, BosPolicy bos) {
  TokenizedRequest out;
  const std::size_t last = context.find_last_not_of(" \t\n\r\f\v");
  if (last == std::string::npos) {
    // Nothing to condition on: the harness scores the continuation after its prefix token.
    const auto prefix_token = tokenizer.bos_id() ? tokenizer.bos_id() : tokenizer.eos_id();
    if (!prefix_token) throw_error(ErrorKind::kInvalidArgument, "an empty context needs a BOS or EOS token, and the tokenizer has neither");
    out.context = {*prefix_token};
    out.continuation = tokenizer.encode(context + continuation, bos);
    return out;
  }
  const std::string ctx = context.substr(0, last + 1);
  const auto whole = tokenizer.encode(ctx + context.substr(last + 1) + continuation, bos);
  out.context = tokenizer.encode(ctx, bos);
  if (out.context.size() > whole.size())
    throw_error(ErrorKind::kInternal, "context encodes to more tokens than context + continuation");
  out.continuation.assign(whole.begin() + static_cast<std::ptrdiff_t>(out.context.size()), whole.end());
  return out;
}

namespace {

// Right-pads token sequences into [B, T] ids and a mask (undefined when nothing is padded).
std::pair<at::Tensor, at::Tensor> pad_right(const std::vector<const std::vector<std::int64_t>*>& sequences) {
  std::size_t longest = 0, shortest = SIZE_MAX;
  for (const auto* seq : sequences) {
    longest = std::max(longest, seq->size());
    shortest = std::min(shortest, seq->size());
  }
  const auto B = static_cast<std::int64_t>(sequences.size()), T = static_cast<std::int64_t>(longest);
  at::Tensor ids = at::zeros({B, T}, at::kLong), mask = at::zeros({B, T}, at::kLong);
  for (std::int64_t b = 0; b < B; ++b) {
    const auto& seq = *sequences[static_cast<std::size_t>(b)];
    const auto len = static_cast<std::int64_t>(seq.size());
    if (len == 0) continue;
    ids[b].narrow(0, 0, len).copy_(at::tensor(seq, at::kLong));
    mask[b].narrow(0, 0, len).fill_(1);
  }
  return {ids, shortest == longest ? at::Tensor() : mask};
}

// Where each scored token sits in a padded batch, and which request it belongs to.
struct ScoreTargets {
  std::vector<std::int64_t> rows, positions, targets;
  std::vector<std::size_t> request;
  void add(std::int64_t row, std::int64_t position, std::int64_t target, std::size_t r) {
    rows.push_back(row);
    positions.push_back(position);
    targets.push_back(target);
    request.push_back(r);
  }
};

ScoredPositions run(CausalLM& model, const at::Tensor& ids, const at::Tensor& mask, const KVCache* past, const ScoreTargets& t,
                    KVCache* cache_out = nullptr) {
  return score_positions(model, ids, mask, past, at::tensor(t.rows, at::kLong), at::tensor(t.positions, at::kLong),
                         at::tensor(t.targets, at::kLong), cache_out);
}

void accumulate(const ScoredPositions& scored, const ScoreTargets& t, std::vector<ContinuationScore>& scores) {
  const double* logprob = scored.logprobs.data_ptr<double>();
  const bool* greedy = scored.greedy.data_ptr<bool>();
  for (std::size_t k = 0; k < t.request.size(); ++k) {
    scores[t.request[k]].logprob += logprob[k];
    scores[t.request[k]].greedy = scores[t.request[k]].greedy && greedy[k];
  }
}

}  // namespace

std::vector<ContinuationScore> score_continuations(CausalLM& model, const std::vector<TokenizedRequest>& requests,
                                                   const ScoringOptions& options, Progress* progress) {
  if (options.batch_size < 1) throw_error(ErrorKind::kInvalidArgument, "batch_size {} must be at least 1", options.batch_size);
  const std::int64_t prefix_len = options.prefix != nullptr ? options.prefix->length() : 0;
  const std::int64_t max_length = model.config().max_position_embeddings - prefix_len;
  if (max_length < 1) throw_error(ErrorKind::kInvalidArgument, "the prefix ({} tokens) fills the model's context", prefix_len);
  const auto batch = static_cast<std::size_t>(options.batch_size);
  std::vector<ContinuationScore> scores(requests.size());
  for (auto& s : scores) s.greedy = true;

  // Requests sharing their context tokens (the choices of one item) run the context once:
  // its KV serves every continuation, which is exactly the same computation as running
  // context + continuation whole (the prefix invariant), at a fraction of the cost. Only
  // requests that need no truncation qualify; the rest run whole.
  std::map<std::vector<std::int64_t>, std::vector<std::size_t>> by_context;
  std::vector<std::size_t> whole;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const auto& r = requests[i];
    if (r.continuation.empty()) throw_error(ErrorKind::kInvalidArgument, "request {}: the continuation encodes to no tokens", i);
    if (r.context.empty()) throw_error(ErrorKind::kInvalidArgument, "request {}: the context encodes to no tokens", i);
    const bool fits = static_cast<std::int64_t>(r.context.size() + r.continuation.size()) - 1 <= max_length;
    if (fits && options.share_contexts) by_context[r.context].push_back(i);
    else whole.push_back(i);
  }
  std::vector<const std::vector<std::size_t>*> groups;
  for (auto& [context, members] : by_context) {
    if (members.size() > 1) groups.push_back(&members);
    else whole.push_back(members.front());
  }

  // ---- shared contexts: one pass over the contexts, one over the continuations ----
  std::stable_sort(groups.begin(), groups.end(), [&](const auto* a, const auto* b) {
    return requests[a->front()].context.size() > requests[b->front()].context.size();
  });
  for (std::size_t first = 0; first < groups.size();) {
    std::size_t last = first, rows = 0;  // as many groups as keep the continuation rows within the batch size
    while (last < groups.size() && (last == first || rows + groups[last]->size() <= batch)) rows += groups[last++]->size();

    std::vector<const std::vector<std::int64_t>*> contexts;
    ScoreTargets first_tokens;  // each continuation's first token, scored at its context's last position
    std::vector<std::int64_t> group_of_row;
    for (std::size_t g = first; g < last; ++g) {
      const auto& context = requests[groups[g]->front()].context;
      contexts.push_back(&context);
      for (std::size_t r : *groups[g]) {
        first_tokens.add(static_cast<std::int64_t>(g - first), static_cast<std::int64_t>(context.size()) - 1,
                         requests[r].continuation.front(), r);
      }
    }
    auto [ctx_ids, ctx_mask] = pad_right(contexts);
    KVCache context_kv;
    accumulate(run(model, ctx_ids, ctx_mask, options.prefix, first_tokens, &context_kv), first_tokens, scores);

    std::vector<std::vector<std::int64_t>> inputs;  // continuation[:-1] for those with 2+ tokens
    ScoreTargets rest;
    for (std::size_t g = first; g < last; ++g)
      for (std::size_t r : *groups[g]) {
        const auto& cont = requests[r].continuation;
        if (cont.size() < 2) continue;
        const auto row = static_cast<std::int64_t>(inputs.size());
        inputs.emplace_back(cont.begin(), cont.end() - 1);
        group_of_row.push_back(static_cast<std::int64_t>(g - first));
        for (std::size_t j = 1; j < cont.size(); ++j) rest.add(row, static_cast<std::int64_t>(j) - 1, cont[j], r);
      }
    if (!inputs.empty()) {
      std::vector<const std::vector<std::int64_t>*> views;
      for (const auto& in : inputs) views.push_back(&in);
      auto [ids, mask] = pad_right(views);
      const KVCache past = context_kv.select_rows(at::tensor(group_of_row, at::kLong));
      accumulate(run(model, ids, mask, &past, rest), rest, scores);
    }
    if (progress != nullptr) progress->advance(static_cast<std::int64_t>(rows));
    first = last;
  }

  // ---- the rest, whole: (context + continuation)[:-1], keeping the last max_length
  // tokens; the continuation's last min(len, input) tokens are scored ----
  std::vector<std::vector<std::int64_t>> inputs(requests.size());
  for (std::size_t r : whole) {
    std::vector<std::int64_t> full = requests[r].context;
    full.insert(full.end(), requests[r].continuation.begin(), requests[r].continuation.end());
    const std::size_t keep = std::min<std::size_t>(full.size(), static_cast<std::size_t>(max_length) + 1);
    inputs[r].assign(full.end() - static_cast<std::ptrdiff_t>(keep), full.end() - 1);
  }
  std::stable_sort(whole.begin(), whole.end(), [&](std::size_t a, std::size_t b) { return inputs[a].size() > inputs[b].size(); });
  for (std::size_t first = 0; first < whole.size(); first += batch) {
    const std::size_t count = std::min(whole.size() - first, batch);
    std::vector<const std::vector<std::int64_t>*> views;
    ScoreTargets targets;
    for (std::size_t b = 0; b < count; ++b) {
      const std::size_t r = whole[first + b];
      views.push_back(&inputs[r]);
      const auto& cont = requests[r].continuation;
      const auto len = static_cast<std::int64_t>(inputs[r].size());
      const std::int64_t n = std::min<std::int64_t>(static_cast<std::int64_t>(cont.size()), len);
      scores[r].truncated = n < static_cast<std::int64_t>(cont.size());
      const auto skipped = static_cast<std::int64_t>(cont.size()) - n;
      for (std::int64_t j = 0; j < n; ++j)
        targets.add(static_cast<std::int64_t>(b), len - n + j, cont[static_cast<std::size_t>(skipped + j)], r);
    }
    auto [ids, mask] = pad_right(views);
    accumulate(run(model, ids, mask, options.prefix, targets), targets, scores);
    if (progress != nullptr) progress->advance(static_cast<std::int64_t>(count));
  }
  return scores;
}

}  // namespace cushioncache
