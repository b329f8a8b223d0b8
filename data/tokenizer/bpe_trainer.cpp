#include "data/tokenizer/bpe_trainer.h"

#include <algorithm>
#include <queue>
#include <unordered_map>
#include <vector>

#include "base/errors.h"

namespace kd::data {

namespace {

using PairKey = std::uint64_t;  // (left << 32) | right: comparing keys compares (left, right)

PairKey key_of(std::int32_t a, std::int32_t b) { return (PairKey(std::uint32_t(a)) << 32) | std::uint32_t(b); }

// A heap entry; the top is the highest count, then the lowest pair. Entries go stale when
// a count drops; the loop re-checks the live count when it pops one.
struct Candidate {
  std::int64_t count;
  PairKey pair;
  bool operator<(const Candidate& o) const { return count != o.count ? count < o.count : pair > o.pair; }
};

// The incremental algorithm: live pair counts, and for each pair the words that (may)
// contain it, so a merge rewrites only the words it touches.
class MergeLoop {
 public:
  explicit MergeLoop(const PieceCounts& pc) : count_(pc.counts.begin(), pc.counts.end()) {
    words_.reserve(pc.pieces.size());
    for (const std::string& p : pc.pieces) {
      std::vector<std::int32_t> w(p.size());
      for (std::size_t i = 0; i < p.size(); ++i) w[i] = static_cast<unsigned char>(p[i]);
      words_.push_back(std::move(w));
    }
    for (std::size_t w = 0; w < words_.size(); ++w) {
      const auto& s = words_[w];
      for (std::size_t i = 0; i + 1 < s.size(); ++i) {
        const PairKey k = key_of(s[i], s[i + 1]);
        pairs_[k] += count_[w];
        where_[k].push_back(std::uint32_t(w));
      }
    }
    for (const auto& [k, c] : pairs_) heap_.push({c, k});
  }

  // The next pair to merge (most frequent, lowest ids on ties), or false when none is left.
  bool best(PairKey& out) {
    while (!heap_.empty()) {
      const Candidate top = heap_.top();
      heap_.pop();
      const auto it = pairs_.find(top.pair);
      const std::int64_t live = it == pairs_.end() ? 0 : it->second;
      if (live == top.count) {
        out = top.pair;
        return true;
      }
      if (live > 0 && live < top.count) heap_.push({live, top.pair});  // stale: count dropped
    }
    return false;
  }

  // Replaces every (a, b) by `made`, left to right and non-overlapping, in every word that
  // holds it, and updates the counts of the pairs around each occurrence.
  void merge(PairKey pair, std::int32_t made) {
    const auto a = std::int32_t(pair >> 32), b = std::int32_t(pair & 0xffffffffu);
    std::vector<std::uint32_t> words = std::move(where_[pair]);
    where_.erase(pair);
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    delta_.clear();
    for (std::uint32_t w : words) {
      auto& s = words_[w];
      const std::int64_t c = count_[w];
      std::size_t out = 0;
      // In place: `out` trails `in`, so s[out - 1] is the already-rewritten left neighbour
      // and s[in + 2] the not-yet-read right one.
      for (std::size_t in = 0; in < s.size();) {
        if (in + 1 < s.size() && s[in] == a && s[in + 1] == b) {
          delta_[pair] -= c;
          if (out > 0) {
            const std::int32_t left = s[out - 1];
            delta_[key_of(left, a)] -= c;
            delta_[key_of(left, made)] += c;
            where_[key_of(left, made)].push_back(w);
          }
          if (in + 2 < s.size()) {
            const std::int32_t right = s[in + 2];
            delta_[key_of(b, right)] -= c;
            delta_[key_of(made, right)] += c;
            where_[key_of(made, right)].push_back(w);
          }
          s[out++] = made;
          in += 2;
        } else {
          s[out++] = s[in++];
        }
      }
      s.resize(out);
    }
    for (const auto& [k, d] : delta_) {
      if (d == 0) continue;
      auto it = pairs_.try_emplace(k, 0).first;
      it->second += d;
      if (it->second <= 0) {
        pairs_.erase(it);  // gone everywhere (its `where_` list is cleaned when popped or never)
        where_.erase(k);
      } else if (d > 0) {
        heap_.push({it->second, k});
      }
    }
  }

 private:
  std::vector<std::vector<std::int32_t>> words_;
  std::vector<std::int64_t> count_;
  std::unordered_map<PairKey, std::int64_t> pairs_;
  std::unordered_map<PairKey, std::vector<std::uint32_t>> where_;
  std::unordered_map<PairKey, std::int64_t> delta_;
  std::priority_queue<Candidate> heap_;
};

}  // namespace

BpeTokenizer train_bpe(const PieceCounts& counts, const BpeTrainSpec& spec) {
  KD_CHECK_INPUT(spec.vocab_size >= kMinBpeVocab && spec.vocab_size <= kMaxBpeVocab,
                 "tokenizer vocab_size {} is outside [{}, {}] (256 bytes + at least one merge + 2 special tokens)",
                 spec.vocab_size, kMinBpeVocab, kMaxBpeVocab);
  const auto wanted = std::size_t(spec.vocab_size - 258);
  MergeLoop loop(counts);
  std::vector<BpeMerge> merges;
  merges.reserve(std::min<std::size_t>(wanted, std::size_t(1) << 20));
  const std::size_t every = std::max<std::size_t>(1, wanted / 100);
  PairKey pair = 0;
  while (merges.size() < wanted && loop.best(pair)) {
    const auto made = std::int32_t(256 + merges.size());
    merges.push_back({std::int32_t(pair >> 32), std::int32_t(pair & 0xffffffffu)});
    loop.merge(pair, made);
    if (spec.progress && merges.size() % every == 0) spec.progress(merges.size(), wanted);
  }
  KD_CHECK_INPUT(!merges.empty(), "cannot train a tokenizer: the training text has no two adjacent bytes "
                 "inside one pre-token (is the corpus empty?)");
  if (spec.progress) spec.progress(merges.size(), wanted);
  return BpeTokenizer::from_merges(std::move(merges), "trained tokenizer");
}

BpeTokenizer train_bpe(std::span<const std::string_view> documents, const BpeTrainSpec& spec) {
  KD_CHECK_INPUT(spec.vocab_size >= kMinBpeVocab && spec.vocab_size <= kMaxBpeVocab,
                 "tokenizer vocab_size {} is outside [{}, {}] (256 bytes + at least one merge + 2 special tokens)",
                 spec.vocab_size, kMinBpeVocab, kMaxBpeVocab);
  return train_bpe(count_pieces(documents, spec.threads), spec);
}

}  // namespace kd::data
