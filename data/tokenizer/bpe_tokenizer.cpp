#include "data/tokenizer/bpe_tokenizer.h"

#include <algorithm>

#include "data/tokenizer/pretokenize.h"
#include "data/tokenizer/regex_pretokenizer.h"
#include "base/errors.h"

namespace kd::data {

namespace {

constexpr std::size_t kMaxCachedPiece = 256;

struct Fnv1a64 {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  void byte(unsigned char b) { h = (h ^ b) * 0x100000001b3ULL; }
  void u32(std::uint32_t v) {
    for (int k = 0; k < 4; ++k) byte(static_cast<unsigned char>(v >> (8 * k)));
  }
  void text0(std::string_view s) {  // the string and a terminating 0 byte
    for (char c : s) byte(static_cast<unsigned char>(c));
    byte(0);
  }
};

}  // namespace

BpeTokenizer BpeTokenizer::from_merges(std::vector<BpeMerge> merges, const std::string& source) {
  const std::int64_t vocab = std::int64_t(merges.size()) + 258;
  KD_CHECK_INPUT(vocab >= kMinBpeVocab && vocab <= kMaxBpeVocab,
                 "{}: {} merges give vocab_size {}, outside [{}, {}]", source, merges.size(), vocab,
                 kMinBpeVocab, kMaxBpeVocab);
  BpeTokenizer t;
  t.bytes_.reserve(std::size_t(vocab));
  for (int b = 0; b < 256; ++b) {
    t.bytes_.emplace_back(1, static_cast<char>(b));
    t.byte_ids_[std::size_t(b)] = b;
  }
  t.merge_ids_.reserve(merges.size());
  for (std::size_t k = 0; k < merges.size(); ++k) {
    const BpeMerge m = merges[k];
    const std::int64_t limit = 256 + std::int64_t(k);
    KD_CHECK_INPUT(m.left >= 0 && m.left < limit && m.right >= 0 && m.right < limit,
                   "{}: merges[{}] = [{}, {}] uses an id outside [0, {}) (a merge may only use "
                   "bytes and tokens made by earlier merges)",
                   source, k, m.left, m.right, limit);
    t.bytes_.push_back(t.bytes_[std::size_t(m.left)] + t.bytes_[std::size_t(m.right)]);
    t.merge_ids_.push_back(std::int32_t(limit));
  }
  t.merges_ = std::move(merges);
  t.index_merges(source);
  t.eot_id_ = std::int32_t(vocab - 2);
  t.pad_id_ = std::int32_t(vocab - 1);
  t.bytes_.emplace_back(kEotText);
  t.bytes_.emplace_back(kPadText);
  t.specials_ = {{t.eot_id_, std::string(kEotText), false}, {t.pad_id_, std::string(kPadText), false}};

  Fnv1a64 h;
  h.text0(kPretokenizerName);
  for (const BpeMerge& m : t.merges_) h.u32(std::uint32_t(m.left)), h.u32(std::uint32_t(m.right));
  for (const Special& sp : t.specials_) h.u32(std::uint32_t(sp.id)), h.text0(sp.name);
  t.hash_ = h.h;
  return t;
}

void BpeTokenizer::index_merges(const std::string& source) {
  ranks_.clear();
  ranks_.reserve(merges_.size());
  for (std::size_t k = 0; k < merges_.size(); ++k) {
    const BpeMerge m = merges_[k];
    const bool fresh = ranks_.emplace(pair_key(m.left, m.right), std::int32_t(k)).second;
    KD_CHECK_INPUT(fresh, "{}: merges[{}] = [{}, {}] repeats an earlier merge", source, k, m.left, m.right);
  }
}

std::uint64_t BpeTokenizer::hf_hash() const {
  Fnv1a64 h;
  h.text0("hf-byte-level-bpe");
  h.text0(regex_ ? std::string_view(regex_->pattern()) : kPretokenizerName);
  h.byte(ignore_merges_ ? 1 : 0);
  h.u32(std::uint32_t(bytes_.size()));
  for (std::int32_t id : byte_ids_) h.u32(std::uint32_t(id));
  for (std::size_t k = 0; k < merges_.size(); ++k)
    h.u32(std::uint32_t(merges_[k].left)), h.u32(std::uint32_t(merges_[k].right)), h.u32(std::uint32_t(merge_ids_[k]));
  // Whole-token ids matter under ignore_merges: hash every token's bytes then.
  if (ignore_merges_)
    for (const std::string& b : bytes_) h.text0(b);
  for (const Special& sp : specials_) h.u32(std::uint32_t(sp.id)), h.text0(sp.name);
  h.u32(std::uint32_t(eot_id_)), h.u32(std::uint32_t(bos_id_));
  return h.h;
}

bool BpeTokenizer::is_special(std::int32_t id) const {
  return std::any_of(specials_.begin(), specials_.end(), [id](const Special& sp) { return sp.id == id; });
}

std::string BpeTokenizer::pretokenizer_pattern() const {
  return regex_ ? regex_->pattern() : gpt2_approx_v1_pattern();
}

void BpeTokenizer::pretokenize_text(std::string_view text, std::vector<std::string_view>& out) const {
  if (regex_)
    regex_->split(text, out);
  else
    pretokenize(text, out);
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<std::int32_t>& out) const {
  const int n = int(piece.size());
  if (n == 1) {
    out.push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  if (ignore_merges_)
    if (const auto it = whole_ids_.find(piece); it != whole_ids_.end()) {
      out.push_back(it->second);
      return;
    }
  // Symbols as a linked list over the piece's bytes; a min-heap of (rank, position) picks the
  // next merge. Equal ranks go leftmost first, which is the left-to-right, non-overlapping
  // order in which training merged each pair, so encode reproduces the training segmentation.
  thread_local std::vector<std::int32_t> id, next, prev;
  id.resize(std::size_t(n)), next.resize(std::size_t(n)), prev.resize(std::size_t(n));
  for (int i = 0; i < n; ++i) {
    id[i] = byte_ids_[static_cast<unsigned char>(piece[std::size_t(i)])];
    next[i] = i + 1;  // n = end
    prev[i] = i - 1;
  }
  using Cand = std::pair<std::int32_t, std::int32_t>;  // (rank, position)
  thread_local std::vector<Cand> heap;  // min-heap via std::greater; reused across calls
  heap.clear();
  const auto push = [](Cand c) {
    heap.push_back(c);
    std::push_heap(heap.begin(), heap.end(), std::greater<>{});
  };
  for (int i = 0; i + 1 < n; ++i)
    if (const std::int32_t r = rank_of(id[i], id[i + 1]); r >= 0) push({r, i});
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
    const auto [r, i] = heap.back();
    heap.pop_back();
    if (id[i] < 0 || next[i] >= n) continue;  // erased or now last
    const int j = next[i];
    const BpeMerge m = merges_[std::size_t(r)];
    if (id[i] != m.left || id[j] != m.right) continue;  // stale: the pair here changed
    id[i] = merge_ids_[std::size_t(r)];
    id[j] = -1;
    next[i] = next[j];
    if (next[j] < n) prev[next[j]] = i;
    if (prev[i] >= 0)
      if (const std::int32_t rl = rank_of(id[prev[i]], id[i]); rl >= 0) push({rl, prev[i]});
    if (next[i] < n)
      if (const std::int32_t rr = rank_of(id[i], id[next[i]]); rr >= 0) push({rr, i});
  }
  for (int i = 0; i < n; i = next[i]) out.push_back(id[i]);
}

void BpeTokenizer::encode_append(std::string_view text, std::vector<std::int32_t>& out,
                                 BpeEncodeCache* cache) const {
  BpeEncodeCache local(std::size_t(1) << 16);
  BpeEncodeCache& c = cache ? *cache : local;
  thread_local std::vector<std::string_view> pieces;
  pieces.clear();
  pretokenize_text(text, pieces);
  for (std::string_view p : pieces) {
    if (p.size() == 1) {
      out.push_back(byte_ids_[static_cast<unsigned char>(p[0])]);
      continue;
    }
    if (const auto it = c.map_.find(p); it != c.map_.end()) {
      const auto [off, cnt] = it->second;
      out.insert(out.end(), c.ids_.begin() + off, c.ids_.begin() + off + cnt);
      continue;
    }
    const std::size_t before = out.size();
    encode_piece(p, out);
    if (p.size() > kMaxCachedPiece) continue;  // long pieces (blobs, runs) rarely repeat
    if (c.map_.size() >= c.max_pieces_ || c.ids_.size() > (std::size_t(1) << 24)) {
      c.map_.clear();  // bounded memory: start over rather than track recency
      c.ids_.clear();
    }
    const auto off = std::uint32_t(c.ids_.size());
    c.ids_.insert(c.ids_.end(), out.begin() + std::ptrdiff_t(before), out.end());
    c.map_.emplace(std::string(p), std::make_pair(off, std::uint32_t(out.size() - before)));
  }
}

std::vector<std::int32_t> BpeTokenizer::encode(std::string_view text, BpeEncodeCache* cache) const {
  std::vector<std::int32_t> out;
  out.reserve(text.size() / 3 + 8);
  encode_append(text, out, cache);
  return out;
}

std::string_view BpeTokenizer::token_bytes(std::int32_t id) const {
  KD_CHECK_INPUT(id >= 0 && std::int64_t(id) < vocab_size(), "token id {} is outside the tokenizer's vocabulary [0, {})",
                 id, vocab_size());
  return bytes_[std::size_t(id)];
}

std::string BpeTokenizer::decode(std::span<const std::int32_t> ids) const {
  std::string out;
  for (std::int32_t id : ids) out += token_bytes(id);
  return out;
}

}  // namespace kd::data
