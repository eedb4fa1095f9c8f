// The BPE model of Hugging Face tokenizers: merges applied by rank with a priority queue
// (O(n log n), so a SentencePiece-style tokenizer without a pre-tokenizer can encode a
// whole document as one word), byte fallback, unknown-token fusing, ignore_merges.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cushioncache {

class BpeModel {
 public:
  struct Options {
    bool byte_fallback = false;              // unknown characters -> <0xXX> byte tokens
    std::optional<std::string> unk_token;    // else unknown characters are dropped, as HF does
    bool fuse_unk = false;                   // consecutive unknowns become one unk token
    bool ignore_merges = false;              // a piece already in the vocabulary is emitted whole
  };

  // Throws kCorruptInput if a merge names a token missing from the vocabulary.
  BpeModel(std::unordered_map<std::string, std::int64_t> vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, Options options);

  // Appends the ids of one pre-tokenized piece.
  void encode_piece(std::string_view piece, std::vector<std::int64_t>& out) const;

  std::optional<std::int64_t> token_id(const std::string& token) const;
  // "" for ids that fall in a gap of the vocabulary.
  const std::string& token(std::int64_t id) const;
  std::int64_t id_limit() const { return static_cast<std::int64_t>(id_to_token_.size()); }
  std::size_t merge_count() const { return merges_.size(); }

 private:
  struct Merge {
    std::int32_t rank;
    std::int32_t merged_id;
  };
  static std::uint64_t pair_key(std::int64_t left, std::int64_t right) {
    return (static_cast<std::uint64_t>(left) << 32) | static_cast<std::uint32_t>(right);
  }
  void merge_word(std::string_view piece, std::vector<std::int64_t>& out) const;

  std::unordered_map<std::string, std::int64_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::uint64_t, Merge> merges_;
  Options options_;
  std::optional<std::int64_t> unk_id_;
  std::int64_t byte_ids_[256];

  // Byte-level tokenizers see the same short words again and again.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<std::int64_t>> cache_;
};

}  // namespace cushioncache
