#include "cushioncache/search/candidates.h"

#include <algorithm>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"

namespace cushioncache {

nlohmann::json to_json(const FrequentCandidates& o) {
  nlohmann::json j = to_json(o.text);
  j["frequent"] = o.count;
  j["delimiters"] = o.delimiters;
  return j;
}

std::vector<std::int64_t> frequent_token_candidates(const Tokenizer& tokenizer, const FrequentCandidates& options) {
  if (options.count < 0) throw_error(ErrorKind::kInvalidConfig, "the candidate count must be >= 0, got {}", options.count);
  std::map<std::int64_t, std::int64_t> counts;
  // Counted without a model, so no context caps the windows.
  for (const auto& sequence : sample_text_windows(tokenizer, options.text, options.text.seq_len, BosPolicy::kNo).sequences)
    for (std::int64_t t : sequence) ++counts[t];
  std::vector<std::pair<std::int64_t, std::int64_t>> ranked(counts.begin(), counts.end());
  std::sort(ranked.begin(), ranked.end(),
            [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });

  std::vector<std::int64_t> tokens;
  std::set<std::int64_t> seen;
  auto add = [&](std::int64_t t) {
    if (!tokenizer.is_special(t) && seen.insert(t).second) tokens.push_back(t);
  };
  for (const auto& [token, count] : ranked) {
    if (static_cast<std::int64_t>(tokens.size()) >= options.count) break;
    add(token);
  }
  if (options.delimiters)
    for (const char* d : {".", ",", ";", ":", "!", "?", "\n", "\n\n", " ", "-", "\"", "'", "(", ")"})
      for (std::int64_t t : tokenizer.encode(d, BosPolicy::kNo)) add(t);
  return tokens;
}

}  // namespace cushioncache
