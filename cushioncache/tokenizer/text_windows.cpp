#include "cushioncache/tokenizer/text_windows.h"

#include <algorithm>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cushioncache/core/error.h"
#include "cushioncache/io/corpus.h"

namespace cushioncache {

nlohmann::json to_json(const TextWindows& w) {
  return {{"data", w.data}, {"samples", w.samples}, {"seq_len", w.seq_len}, {"seed", w.seed}};
}

std::int64_t room_after_prefix(std::int64_t context, std::int64_t prefix_tokens) {
  const std::int64_t room = context - prefix_tokens;
  if (room < 2)
    throw_error(ErrorKind::kInvalidConfig, "a prefix of {} tokens leaves {} of the model's context of {}: a text window needs at least 2",
                prefix_tokens, std::max<std::int64_t>(room, 0), context);
  return room;
}

SampledWindows sample_text_windows(const Tokenizer& tokenizer, const TextWindows& windows, std::int64_t room, BosPolicy bos,
                                   std::string_view lead_note) {
  const std::int64_t seq_len = std::min(windows.seq_len, room);
  if (windows.samples < 1 || seq_len < 2)
    throw_error(ErrorKind::kInvalidConfig, "text windows need samples >= 1 and seq_len >= 2 (got {}, {})", windows.samples, seq_len);
  const auto documents = load_documents(windows.data);
  // BOS, when wanted, takes the first position of every window.
  const auto with_bos = tokenizer.encode("x", bos), without_bos = tokenizer.encode("x", BosPolicy::kNo);
  const std::vector<std::int64_t> lead(with_bos.begin(), with_bos.end() - static_cast<std::ptrdiff_t>(without_bos.size()));
  const auto text_len = static_cast<std::size_t>(seq_len) - lead.size();

  std::mt19937_64 rng(windows.seed);
  SampledWindows out;
  std::vector<std::vector<std::int64_t>> encoded(documents.size());
  std::vector<bool> tried(documents.size(), false);
  std::size_t too_short = 0;
  auto window_from = [&](const std::vector<std::int64_t>& tokens) {
    std::uniform_int_distribution<std::size_t> start(0, tokens.size() - text_len);
    const std::size_t s = start(rng);
    std::vector<std::int64_t> seq = lead;
    seq.insert(seq.end(), tokens.begin() + static_cast<std::ptrdiff_t>(s), tokens.begin() + static_cast<std::ptrdiff_t>(s + text_len));
    out.sequences.push_back(std::move(seq));
  };
  std::uniform_int_distribution<std::size_t> pick(0, documents.size() - 1);
  while (static_cast<std::int64_t>(out.sequences.size()) < windows.samples && too_short < documents.size()) {
    const std::size_t d = pick(rng);
    if (!tried[d]) {
      encoded[d] = tokenizer.encode(documents[d], BosPolicy::kNo);
      tried[d] = true;
      if (encoded[d].size() < text_len) ++too_short;
    }
    if (encoded[d].size() >= text_len) window_from(encoded[d]);
  }
  std::string how = "random windows of single documents";
  if (static_cast<std::int64_t>(out.sequences.size()) < windows.samples) {
    // Every document is shorter than a window: sample from their concatenation instead.
    std::vector<std::int64_t> all;
    for (const auto& doc : documents) {
      auto t = tokenizer.encode(doc, BosPolicy::kNo);
      all.insert(all.end(), t.begin(), t.end());
    }
    if (all.size() < text_len)
      throw_error(ErrorKind::kInvalidConfig, "text data {} holds {} tokens, fewer than one window of {}", windows.data, all.size(), text_len);
    while (static_cast<std::int64_t>(out.sequences.size()) < windows.samples) window_from(all);
    how = "random windows of the concatenated documents";
  }
  out.leading = static_cast<std::int64_t>(lead.size());
  out.description = fmt::format("{} x {} tokens from {} ({}, seed {}{})", windows.samples, seq_len, windows.data, how, windows.seed,
                                lead.empty() ? std::string() : fmt::format(", {}", lead_note));
  return out;
}

}  // namespace cushioncache
