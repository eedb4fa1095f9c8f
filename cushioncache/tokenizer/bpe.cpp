#include "cushioncache/tokenizer/bpe.h"

#include <queue>

#include <fmt/format.h>

#include "cushioncache/core/error.h"
#include "cushioncache/tokenizer/utf8.h"

namespace cushioncache {
namespace {

constexpr std::size_t kCacheablePieceBytes = 64;
constexpr std::size_t kMaxCacheEntries = 200000;

struct Symbol {
  std::int64_t id;
  std::int32_t prev;
  std::int32_t next;
  bool alive;
};

struct QueuedMerge {
  std::int32_t rank;
  std::int32_t pos;
  std::int32_t merged_id;
  // Lowest rank first, then leftmost: the order Hugging Face tokenizers merge in.
  bool operator>(const QueuedMerge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

BpeModel::BpeModel(std::unordered_map<std::string, std::int64_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, Options options)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  std::int64_t max_id = -1;
  for (const auto& [token, id] : vocab_) {
    if (id < 0 || id > (std::int64_t{1} << 31)) throw_error(ErrorKind::kCorruptInput, "vocabulary id {} of '{}' is out of range", id, token);
    max_id = std::max(max_id, id);
  }
  id_to_token_.assign(static_cast<std::size_t>(max_id + 1), std::string());
  for (const auto& [token, id] : vocab_) id_to_token_[static_cast<std::size_t>(id)] = token;

  merges_.reserve(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    auto l = vocab_.find(left), r = vocab_.find(right), m = vocab_.find(left + right);
    if (l == vocab_.end() || r == vocab_.end() || m == vocab_.end())
      throw_error(ErrorKind::kCorruptInput, "merge {} '{} {}' uses a token missing from the vocabulary", rank, left, right);
    merges_.emplace(pair_key(l->second, r->second), Merge{static_cast<std::int32_t>(rank), static_cast<std::int32_t>(m->second)});
  }

  if (options_.unk_token) {
    auto it = vocab_.find(*options_.unk_token);
    if (it == vocab_.end()) throw_error(ErrorKind::kCorruptInput, "unk_token '{}' is not in the vocabulary", *options_.unk_token);
    unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
}

std::optional<std::int64_t> BpeModel::token_id(const std::string& token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string& BpeModel::token(std::int64_t id) const {
  static const std::string empty;
  if (id < 0 || id >= id_limit()) return empty;
  return id_to_token_[static_cast<std::size_t>(id)];
}

void BpeModel::encode_piece(std::string_view piece, std::vector<std::int64_t>& out) const {
  if (piece.empty()) return;
  if (options_.ignore_merges) {
    auto it = vocab_.find(std::string(piece));
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (piece.size() > kCacheablePieceBytes) {
    merge_word(piece, out);
    return;
  }
  std::string key(piece);
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<std::int64_t> ids;
  merge_word(piece, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  cache_.emplace(std::move(key), std::move(ids));
}

void BpeModel::merge_word(std::string_view piece, std::vector<std::int64_t>& out) const {
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  bool last_was_unk = false;
  auto push = [&](std::int64_t id) {
    const auto pos = static_cast<std::int32_t>(symbols.size());
    symbols.push_back(Symbol{id, pos - 1, -1, true});
    if (pos > 0) symbols[pos - 1].next = pos;
  };
  for (std::string_view ch : utf8::split_chars(piece)) {
    auto it = vocab_.find(std::string(ch));
    if (it != vocab_.end()) {
      push(it->second);
      last_was_unk = false;
      continue;
    }
    if (options_.byte_fallback) {
      bool all_bytes_known = true;
      for (char c : ch) all_bytes_known &= byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all_bytes_known) {
        for (char c : ch) push(byte_ids_[static_cast<unsigned char>(c)]);
        last_was_unk = false;
        continue;
      }
    }
    if (!unk_id_) continue;  // no unk token: the character is dropped, as in HF tokenizers
    if (options_.fuse_unk && last_was_unk) continue;
    push(*unk_id_);
    last_was_unk = true;
  }

  std::priority_queue<QueuedMerge, std::vector<QueuedMerge>, std::greater<QueuedMerge>> queue;
  auto enqueue = [&](std::int32_t pos) {
    if (pos < 0 || symbols[pos].next < 0) return;
    auto it = merges_.find(pair_key(symbols[pos].id, symbols[symbols[pos].next].id));
    if (it != merges_.end()) queue.push(QueuedMerge{it->second.rank, pos, it->second.merged_id});
  };
  for (std::int32_t i = 0; i + 1 < static_cast<std::int32_t>(symbols.size()); ++i) enqueue(i);

  while (!queue.empty()) {
    const QueuedMerge top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    // The entry is stale if either side has changed since it was queued.
    auto it = merges_.find(pair_key(left.id, symbols[left.next].id));
    if (it == merges_.end() || it->second.merged_id != top.merged_id) continue;
    Symbol& right = symbols[left.next];
    left.id = top.merged_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    enqueue(left.prev);
    enqueue(top.pos);
  }
  for (const Symbol& s : symbols)
    if (s.alive) out.push_back(s.id);
}

}  // namespace cushioncache
