// A byte-level BPE tokenizer: what `kdtrain prepare` trains on a corpus, or a Hugging Face
// tokenizer.json (GPT-2 or Llama 3 style) brought in by import-hf; what turns text into the
// token ids that the shards hold.
//
// Two id layouts, one engine:
//  * kdtrain's own ("native"): ids 0..255 are the 256 byte values; 256 + k is the token made
//    by merge k; the last two ids are <|endoftext|> (eot, vocab_size − 2) and <|pad|>
//    (vocab_size − 1). Text is split by pretokenize.h ("gpt2-approx-v1").
//  * Hugging Face's: the ids of tokenizer.json's vocab and added tokens, whatever they are;
//    the pieces come from its regular expression (regex_pretokenizer.h); eot is the model's
//    eos token, and a TemplateProcessing post-processor that puts a token before every text
//    (Llama 3's <|begin_of_text|>) makes bos_id().
// Merges never cross a piece boundary; within a piece the lowest-ranked pair present merges
// first, leftmost on ties (what both kdtrain's training and Hugging Face's BPE do).
// encode() never emits a special token (the literal text "<|endoftext|>" encodes as ordinary
// bytes; Hugging Face by default would match it); callers add bos and eot where documents
// begin and end. decode() is the inverse of encode() on every byte string, valid UTF-8 or not.
//
// Files (docs/tokenizer-format.md): kdtrain's own JSON for a native tokenizer,
//   {
//     "format": "kdtrain-bpe",            // exactly this string
//     "version": 1,                       // this format's version
//     "vocab_size": N,                    // 256 + merges + 2
//     "byte_level": true,                 // ids 0..255 are raw bytes
//     "pretokenizer": "gpt2-approx-v1",   // the split rules of pretokenize.h
//     "special_tokens": {"<|endoftext|>": N - 2, "<|pad|>": N - 1},
//     "merges": [[a, b], ...]             // merge k (0-based) makes id 256 + k from ids a, b
//   }
// (checked on load: every field present with its type; N − 258 merges; in merge k both ids
// are < 256 + k; no pair twice; other keys ignored), and for a Hugging Face tokenizer
//   {"format": "kdtrain-hf-bpe", "version": 1, "eot_id": E, "hf_tokenizer": {tokenizer.json}}.
// A bare Hugging Face tokenizer.json loads too (hf_tokenizer_file.cpp says what is accepted).
//
// hash(): FNV-1a 64 over everything that decides the ids. Native: the bytes
// "gpt2-approx-v1\0", then each merge as two u32 LE (a, b), then each special token in id
// order as u32 LE id followed by its name and a 0 byte. Shards record it for provenance.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kd::data {

class RegexPretokenizer;

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

// Lets string-keyed maps be searched with a string_view.
struct TextHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Memo of piece → ids for one thread: natural text repeats its pieces, so most pieces are
// merged once. Not thread-safe; give each encoding thread its own.
class BpeEncodeCache {
 public:
  explicit BpeEncodeCache(std::size_t max_pieces = std::size_t(1) << 18) : max_pieces_(max_pieces) {}

 private:
  friend class BpeTokenizer;
  // value: [offset, offset + count) in ids_
  std::unordered_map<std::string, std::pair<std::uint32_t, std::uint32_t>, TextHash, std::equal_to<>> map_;
  std::vector<std::int32_t> ids_;
  std::size_t max_pieces_;
};

class BpeTokenizer {
 public:
  // A native tokenizer from its merge list. Throws InputError naming `source` when the list
  // breaks a constraint of the file format above (an id from the future, a repeated pair, a
  // size out of range).
  static BpeTokenizer from_merges(std::vector<BpeMerge> merges, const std::string& source = "merge list");
  // A Hugging Face tokenizer.json's text. `eos`: the id that ends a document (config.json's
  // eos_token_id); when absent, the special token named <|endoftext|>, <|end_of_text|> or </s>.
  // InputError naming `source` and the field for anything kdtrain cannot reproduce exactly
  // (SentencePiece-style files: Metaspace, byte_fallback, normalizers; see the .cpp).
  static BpeTokenizer from_hf_json_text(std::string_view text, const std::string& source,
                                        std::optional<std::int32_t> eos = std::nullopt);

  // Either format above, or a bare Hugging Face tokenizer.json (its eos then comes from a
  // tokenizer_config.json beside it, when there is one). InputError naming the path and field.
  static BpeTokenizer load(const std::string& path);
  static BpeTokenizer from_json_text(std::string_view text, const std::string& source);
  std::string to_json_text() const;  // the kdtrain format of this tokenizer's kind
  // Writes path + ".tmp" then renames, so no half-written file has the final name.
  void save(const std::string& path) const;
  // The Hugging Face files: tokenizer.json, and tokenizer_config.json naming bos/eos/pad.
  // A native tokenizer's pre-tokenizer travels as gpt2_approx_v1_pattern(); InputError when
  // two of its tokens have the same bytes (tokenizer.json's vocab is keyed by them).
  std::string to_hf_json_text() const;
  std::string hf_tokenizer_config_json() const;

  bool native() const { return native_; }
  std::int64_t vocab_size() const { return std::int64_t(bytes_.size()); }
  std::int32_t eot_id() const { return eot_id_; }
  std::int32_t pad_id() const { return pad_id_; }  // −1: none
  std::int32_t bos_id() const { return bos_id_; }  // −1: texts start without one
  const std::vector<BpeMerge>& merges() const { return merges_; }
  std::uint64_t hash() const { return hash_; }
  bool is_special(std::int32_t id) const;

  // Token ids of `text` (no special tokens). `cache` may be null (a call-local one is used).
  std::vector<std::int32_t> encode(std::string_view text, BpeEncodeCache* cache = nullptr) const;
  void encode_append(std::string_view text, std::vector<std::int32_t>& out, BpeEncodeCache* cache) const;
  // The ids of one pre-tokenizer piece, merged by rank (no cache).
  void encode_piece(std::string_view piece, std::vector<std::int32_t>& out) const;
  // The pre-tokenizer as a pattern (a native one's: gpt2_approx_v1_pattern()).
  std::string pretokenizer_pattern() const;
  // The pre-tokenizer's pieces of `text`.
  void pretokenize_text(std::string_view text, std::vector<std::string_view>& out) const;

  // Raw bytes of `ids`; specials give their literal names. An id outside [0, vocab_size)
  // is an InputError (ids come from files).
  std::string decode(std::span<const std::int32_t> ids) const;
  // The bytes of one token (a special token's name for specials).
  std::string_view token_bytes(std::int32_t id) const;

 private:
  BpeTokenizer() = default;
  struct Special {
    std::int32_t id;
    std::string name;
    bool in_vocab;  // also an entry of tokenizer.json's vocab (GPT-2's <|endoftext|>)
  };
  // Either kdtrain format, parsed; and a parsed Hugging Face tokenizer.json.
  static BpeTokenizer from_document(const nlohmann::json& doc, const std::string& source);
  static BpeTokenizer from_hf_json(const nlohmann::json& doc, const std::string& source,
                                   std::optional<std::int32_t> eos);
  nlohmann::ordered_json hf_json() const;
  // Fills ranks_ from merges_, refusing a repeated pair.
  void index_merges(const std::string& source);
  std::uint64_t hf_hash() const;
  // Rank of the merge of (left, right), or -1.
  std::int32_t rank_of(std::int32_t left, std::int32_t right) const {
    const auto it = ranks_.find(pair_key(left, right));
    return it == ranks_.end() ? -1 : it->second;
  }
  static std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
    return (std::uint64_t(std::uint32_t(a)) << 32) | std::uint32_t(b);
  }

  bool native_ = true;
  std::vector<BpeMerge> merges_;
  std::vector<std::int32_t> merge_ids_;  // merge k makes id merge_ids_[k]
  std::unordered_map<std::uint64_t, std::int32_t> ranks_;
  std::array<std::int32_t, 256> byte_ids_{};
  std::vector<std::string> bytes_;  // per id, specials included
  std::vector<Special> specials_;   // in id order
  std::int32_t eot_id_ = -1, pad_id_ = -1, bos_id_ = -1;
  std::uint64_t hash_ = 0;
  // Hugging Face only: the pattern (null: pretokenize.h) and ignore_merges, under which a
  // piece that is itself a vocab token is that token (Llama 3).
  std::shared_ptr<const RegexPretokenizer> regex_;
  bool ignore_merges_ = false;
  std::unordered_map<std::string, std::int32_t, TextHash, std::equal_to<>> whole_ids_;
};

}  // namespace kd::data
