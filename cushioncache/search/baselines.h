// Baseline prefixes that take seconds to build, stored as the same kind of artifact as a
// searched prefix so that every comparison is one flag:
//   - BOS only, kept in full precision (IntactKV-style);
//   - PrefixQuant-style: the tokens that most often carry outliers (a token whose largest
//     |x| at a down-projection input exceeds `threshold` times that tensor's median |x|),
//     as many as a sequence has outlier tokens on average, followed by BOS.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cushioncache/model/causal_lm.h"
#include "cushioncache/tokenizer/text_windows.h"
#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache {

std::vector<std::int64_t> bos_prefix_tokens(const Tokenizer& tokenizer);

struct PrefixQuantOptions {
  double threshold = 64;
  TextWindows windows{"c4", 16, 512, 0};  // ordinary inputs, BOS first
  std::int64_t max_tokens = 4;  // outlier tokens at most, BOS not counted
};

struct PrefixQuantResult {
  std::vector<std::int64_t> tokens;  // the prefix: outlier tokens, then BOS
  std::vector<std::pair<std::int64_t, std::int64_t>> counts;  // (token, outlier positions), most frequent first
  double outlier_tokens_per_sequence = 0;
};

PrefixQuantResult prefixquant_prefix(CausalLM& model, const Tokenizer& tokenizer, const PrefixQuantOptions& options);
nlohmann::json to_json(const PrefixQuantOptions& options);

}  // namespace cushioncache
