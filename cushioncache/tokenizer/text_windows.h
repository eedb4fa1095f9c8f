// Token windows sampled from a text corpus: what calibration, the prefix search, tuning,
// the PrefixQuant baseline, the frequent-token candidates and `inspect` all run on. One
// value type says which windows (corpus, how many, how long, seed), and one rule says how
// long a window may be behind a cached prefix, so a setting means the same everywhere.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cushioncache/tokenizer/tokenizer.h"

namespace cushioncache {

struct TextWindows {
  std::string data = "c4";     // a corpus name or path (io/corpus.h)
  std::int64_t samples = 128;  // windows
  std::int64_t seq_len = 512;  // tokens per window, a leading BOS included; capped by the room (room_after_prefix)
  std::uint64_t seed = 0;
};

// {"data", "samples", "seq_len", "seed"}: the keys the settings and reports use.
nlohmann::json to_json(const TextWindows& windows);

// The room rule: the tokens a window may hold behind a prefix of `prefix_tokens` in a
// model whose context is `context` tokens. kInvalidConfig naming both when fewer than two
// are left (a window scores at least one next token).
std::int64_t room_after_prefix(std::int64_t context, std::int64_t prefix_tokens);

struct SampledWindows {
  std::vector<std::vector<std::int64_t>> sequences;  // equal lengths: min(seq_len, room)
  std::int64_t leading = 0;  // tokens the BOS policy put first in every window (0 or 1)
  std::string description;   // "8 x 512 tokens from c4 (random windows of single documents, seed 0, BOS first)"
};

// GPTQ-style: a random document long enough, a random window in it, seeded. With BOS (as
// the policy decides; kNo when a prefix will stand before the windows) a window is BOS
// and seq_len - 1 text tokens. Documents shorter than a window are skipped; if none is
// long enough, the windows come from the documents concatenated. kInvalidConfig for
// samples < 1 or a window shorter than 2; the corpus's own errors when it is missing.
// `lead_note` says in the description what the leading BOS is, when there is one.
SampledWindows sample_text_windows(const Tokenizer& tokenizer, const TextWindows& windows, std::int64_t room, BosPolicy bos,
                                   std::string_view lead_note = "BOS first");

}  // namespace cushioncache
