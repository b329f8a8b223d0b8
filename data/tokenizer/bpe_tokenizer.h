// A GPT-2-style byte-level BPE tokenizer: what `kdtrain prepare` trains on a corpus and
// what turns text into the token ids that the shards hold.
//
// Ids: 0..255 are the 256 byte values; 256 + k is the token made by merge k; the last two
// ids are the special tokens <|endoftext|> (eot, vocab_size − 2) and <|pad|> (vocab_size − 1).
// Text is first split into pieces by the pre-tokenizer (data/tokenizer/pretokenize.h,
// "gpt2-approx-v1"); merges never cross a piece boundary. encode() never emits a special
// token (the literal text "<|endoftext|>" encodes as ordinary bytes); callers append eot
// where a document ends. decode() is the inverse of encode() on every byte string,
// valid UTF-8 or not.
//
// File format (JSON, written by save(), read by load(); docs/tokenizer-format.md):
//   {
//     "format": "kdtrain-bpe",            // exactly this string
//     "version": 1,                       // this format's version
//     "vocab_size": N,                    // 256 + merges + 2
//     "byte_level": true,                 // ids 0..255 are raw bytes
//     "pretokenizer": "gpt2-approx-v1",   // the split rules of pretokenize.h
//     "special_tokens": {"<|endoftext|>": N - 2, "<|pad|>": N - 1},
//     "merges": [[a, b], ...]             // merge k (0-based) makes id 256 + k from ids a, b
//   }
// Constraints checked on load: every field present with its type; N − 258 merges; in merge
// k both ids are < 256 + k (a merge only uses tokens that exist before it); no pair twice.
// Keys other than these are ignored (room for comments or provenance).
//
// hash(): FNV-1a 64 over the bytes "gpt2-approx-v1\0", then each merge as two u32 LE (a, b),
// then each special token in id order as u32 LE id followed by its name and a 0 byte. It
// changes exactly when the encoding could change; shards record it for provenance.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kd::data {

inline constexpr std::string_view kEotText = "<|endoftext|>";
inline constexpr std::string_view kPadText = "<|pad|>";
inline constexpr std::string_view kPretokenizerName = "gpt2-approx-v1";
inline constexpr std::int64_t kMinBpeVocab = 256 + 2 + 1;  // bytes, specials, one merge
inline constexpr std::int64_t kMaxBpeVocab = std::int64_t(1) << 31;

// Merge k of the list makes id 256 + k from (left, right).
struct BpeMerge {
  std::int32_t left;
  std::int32_t right;
  bool operator==(const BpeMerge&) const = default;
};

// Memo of piece → ids for one thread: natural text repeats its pieces, so most pieces are
// merged once. Not thread-safe; give each encoding thread its own.
class BpeEncodeCache {
 public:
  explicit BpeEncodeCache(std::size_t max_pieces = std::size_t(1) << 18) : max_pieces_(max_pieces) {}

 private:
  friend class BpeTokenizer;
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // value: [offset, offset + count) in ids_
  std::unordered_map<std::string, std::pair<std::uint32_t, std::uint32_t>, Hash, std::equal_to<>> map_;
  std::vector<std::int32_t> ids_;
  std::size_t max_pieces_;
};

class BpeTokenizer {
 public:
  // A tokenizer from its merge list. Throws InputError naming `source` when the list breaks
  // a constraint of the file format above (an id from the future, a repeated pair, a size
  // out of range).
  static BpeTokenizer from_merges(std::vector<BpeMerge> merges, const std::string& source = "merge list");

  // The JSON file format above. Every problem is an InputError naming the path and field.
  static BpeTokenizer load(const std::string& path);
  static BpeTokenizer from_json_text(std::string_view text, const std::string& source);
  std::string to_json_text() const;
  // Writes path + ".tmp" then renames, so no half-written file has the final name.
  void save(const std::string& path) const;

  std::int64_t vocab_size() const { return std::int64_t(merges_.size()) + 256 + 2; }
  std::int32_t eot_id() const { return std::int32_t(vocab_size() - 2); }
  std::int32_t pad_id() const { return std::int32_t(vocab_size() - 1); }
  const std::vector<BpeMerge>& merges() const { return merges_; }
  std::uint64_t hash() const { return hash_; }

  // Token ids of `text` (no special tokens). `cache` may be null (a call-local one is used).
  std::vector<std::int32_t> encode(std::string_view text, BpeEncodeCache* cache = nullptr) const;
  void encode_append(std::string_view text, std::vector<std::int32_t>& out, BpeEncodeCache* cache) const;
  // The ids of one pre-tokenizer piece, merged by rank (no cache).
  void encode_piece(std::string_view piece, std::vector<std::int32_t>& out) const;

  // Raw bytes of `ids`; specials give their literal names. An id outside [0, vocab_size)
  // is an InputError (ids come from files).
  std::string decode(std::span<const std::int32_t> ids) const;
  // The bytes of one token (a special token's name for eot and pad).
  std::string_view token_bytes(std::int32_t id) const;

 private:
  BpeTokenizer() = default;
  // Rank of the merge of (left, right), or -1.
  std::int32_t rank_of(std::int32_t left, std::int32_t right) const {
    const auto it = ranks_.find(pair_key(left, right));
    return it == ranks_.end() ? -1 : it->second;
  }
  static std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
    return (std::uint64_t(std::uint32_t(a)) << 32) | std::uint32_t(b);
  }

  std::vector<BpeMerge> merges_;
  std::unordered_map<std::uint64_t, std::int32_t> ranks_;
  std::vector<std::string> bytes_;  // per id, specials included
  std::uint64_t hash_ = 0;
};

}  // namespace kd::data
