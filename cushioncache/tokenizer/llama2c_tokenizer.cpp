#include "cushioncache/tokenizer/llama2c_tokenizer.h"

#include <cstdint>
#include <cstring>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "cushioncache/core/error.h"
#include "cushioncache/core/files.h"
#include "cushioncache/tokenizer/utf8.h"

namespace cushioncache {
namespace {

// llama2.c's fixed ids: <unk>, <s>, </s>, then 256 byte tokens.
constexpr std::int64_t kUnk = 0;
constexpr std::int64_t kBos = 1;
constexpr std::int64_t kEos = 2;
constexpr std::int64_t kFirstByteToken = 3;

class Llama2cTokenizer : public Tokenizer {
 public:
  Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores)
      : pieces_(std::move(pieces)), scores_(std::move(scores)) {
    for (std::size_t i = 0; i < pieces_.size(); ++i) lookup_.emplace(pieces_[i], static_cast<std::int64_t>(i));
  }

  std::vector<std::int64_t> encode(std::string_view text, BosPolicy bos) const override {
    std::vector<std::int64_t> ids;
    if (bos != BosPolicy::kNo) ids.push_back(kBos);  // run.c always asks for BOS
    if (!text.empty()) {
      auto space = lookup_.find(" ");
      if (space == lookup_.end()) throw_error(ErrorKind::kCorruptInput, "tokenizer has no ' ' token for the dummy prefix");
      ids.push_back(space->second);
    }
    // Whole UTF-8 characters (at most 4 bytes, stray continuation bytes cut the run short,
    // as in run.c), falling back to one token per byte.
    for (std::size_t i = 0; i < text.size();) {
      std::size_t len = 1;
      while (i + len < text.size() && len < 4 && (static_cast<unsigned char>(text[i + len]) & 0xC0) == 0x80) ++len;
      auto it = lookup_.find(std::string(text.substr(i, len)));
      if (it != lookup_.end()) {
        ids.push_back(it->second);
      } else {
        for (std::size_t b = 0; b < len; ++b)
          ids.push_back(static_cast<unsigned char>(text[i + b]) + kFirstByteToken);
      }
      i += len;
    }
    merge_best_pairs(ids);
    return ids;
  }

  std::string decode(const std::vector<std::int64_t>& ids, bool skip_special) const override {
    std::string out;
    std::int64_t prev = -1;
    for (auto id : ids) {
      check_id(id);
      if (!(skip_special && is_special(id))) {
        std::string_view piece = pieces_[static_cast<std::size_t>(id)];
        // After BOS the SentencePiece decoder drops the dummy-prefix space.
        if (prev == kBos && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
        unsigned int byte = 0;
        if (piece.size() == 6 && piece.substr(0, 3) == "<0x" && piece[5] == '>' &&
            std::sscanf(std::string(piece).c_str(), "<0x%02X>", &byte) == 1) {
          out += static_cast<char>(byte);
        } else {
          out.append(piece);
        }
      }
      prev = id;
    }
    return utf8::repair(out);
  }

  std::int64_t vocab_size() const override { return static_cast<std::int64_t>(pieces_.size()); }
  std::optional<std::int64_t> bos_id() const override { return kBos; }
  std::optional<std::int64_t> eos_id() const override { return kEos; }
  bool is_special(std::int64_t id) const override { return id == kUnk || id == kBos || id == kEos; }
  std::string token_text(std::int64_t id) const override {
    check_id(id);
    return pieces_[static_cast<std::size_t>(id)];
  }
  std::string describe() const override { return fmt::format("llama2.c tokenizer, {} tokens", pieces_.size()); }

 private:
  void check_id(std::int64_t id) const {
    if (id < 0 || id >= vocab_size()) throw_error(ErrorKind::kNotFound, "token id {} is not in the vocabulary (size {})", id, vocab_size());
  }

  // run.c merges the best-scoring adjacent pair (leftmost on ties) until no pair is in
  // the vocabulary, rescanning the whole sequence each time: quadratic, hours for a
  // corpus. The same merges in the same order come from a priority queue ordered by
  // (score, position), with entries dropped when either side has changed since.
  void merge_best_pairs(std::vector<std::int64_t>& ids) const {
    struct Symbol {
      std::int64_t id;
      std::int64_t prev, next;
      bool alive;
    };
    struct Candidate {
      float score;
      std::int64_t pos, left_id, right_id, merged_id;
      bool operator<(const Candidate& o) const { return score != o.score ? score < o.score : pos > o.pos; }
    };
    const auto n = static_cast<std::int64_t>(ids.size());
    std::vector<Symbol> symbols(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) symbols[static_cast<std::size_t>(i)] = {ids[static_cast<std::size_t>(i)], i - 1, i + 1 < n ? i + 1 : -1, true};
    std::priority_queue<Candidate> queue;
    auto consider = [&](std::int64_t pos) {
      if (pos < 0) return;
      const Symbol& left = symbols[static_cast<std::size_t>(pos)];
      if (left.next < 0) return;
      const Symbol& right = symbols[static_cast<std::size_t>(left.next)];
      auto it = lookup_.find(pieces_[static_cast<std::size_t>(left.id)] + pieces_[static_cast<std::size_t>(right.id)]);
      const float score = it == lookup_.end() ? 0.0f : scores_[static_cast<std::size_t>(it->second)];
      if (it != lookup_.end() && score > -1e10f) queue.push({score, pos, left.id, right.id, it->second});  // run.c's floor
    };
    for (std::int64_t i = 0; i + 1 < n; ++i) consider(i);
    while (!queue.empty()) {
      const Candidate c = queue.top();
      queue.pop();
      Symbol& left = symbols[static_cast<std::size_t>(c.pos)];
      if (!left.alive || left.next < 0 || left.id != c.left_id) continue;
      Symbol& right = symbols[static_cast<std::size_t>(left.next)];
      if (right.id != c.right_id) continue;
      left.id = c.merged_id;
      right.alive = false;
      left.next = right.next;
      if (left.next >= 0) symbols[static_cast<std::size_t>(left.next)].prev = c.pos;
      consider(left.prev);
      consider(c.pos);
    }
    ids.clear();
    for (const Symbol& s : symbols)
      if (s.alive) ids.push_back(s.id);
  }

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, std::int64_t> lookup_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::filesystem::path& path) {
  return with_context(path.string(), [&]() -> std::unique_ptr<Tokenizer> {
    const std::string bytes = read_file(path);
    std::size_t pos = 0;
    auto take = [&](std::size_t n, const char* what) {
      if (n > bytes.size() - pos) throw_error(ErrorKind::kCorruptInput, "truncated while reading {} at byte {}", what, pos);
      const char* p = bytes.data() + pos;
      pos += n;
      return p;
    };
    std::int32_t max_len;
    std::memcpy(&max_len, take(4, "max token length"), 4);
    if (max_len <= 0 || max_len > 4096) throw_error(ErrorKind::kCorruptInput, "max token length {} is implausible", max_len);
    std::vector<std::string> pieces;
    std::vector<float> scores;
    while (pos < bytes.size()) {
      float score;
      std::int32_t len;
      std::memcpy(&score, take(4, "a token score"), 4);
      std::memcpy(&len, take(4, "a token length"), 4);
      if (len < 0 || len > max_len)
        throw_error(ErrorKind::kCorruptInput, "token {} has length {} outside [0, {}]", pieces.size(), len, max_len);
      pieces.emplace_back(take(static_cast<std::size_t>(len), "token bytes"), static_cast<std::size_t>(len));
      scores.push_back(score);
    }
    if (pieces.size() < static_cast<std::size_t>(kFirstByteToken + 256))
      throw_error(ErrorKind::kCorruptInput, "{} tokens; a llama2.c tokenizer has at least 259 (3 specials + 256 bytes)", pieces.size());
    return std::make_unique<Llama2cTokenizer>(std::move(pieces), std::move(scores));
  });
}

}  // namespace cushioncache
