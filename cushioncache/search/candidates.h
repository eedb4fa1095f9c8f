// Candidate subsets for the prefix search. The paper scores the whole vocabulary at every
// step; on a CPU that is hours per step for a 49,152-token vocabulary, so a run can
// restrict the search to the tokens that matter most for the calibration text: its most
// frequent tokens, plus the delimiters (punctuation, whitespace, newlines) on which
// attention sinks form. The subset is part of the run's settings and of its report.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cushioncache/tokenizer/text_windows.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache {

struct FrequentCandidates {
  std::int64_t count = 512;  // most frequent non-special tokens of the sampled text
  // The text counted; seed 1, not the search's own seed: the subset does not follow its texts.
  TextWindows text{"c4", 64, 512, 1};
  bool delimiters = true;    // add the tokens of . , ; : ! ? newlines, spaces, quotes, brackets
};

nlohmann::json to_json(const FrequentCandidates& options);

// The subset, most frequent first (ties by id), delimiters after, without duplicates.
std::vector<std::int64_t> frequent_token_candidates(const Tokenizer& tokenizer, const FrequentCandidates& options);

}  // namespace cushioncache
