// Learns a byte-level BPE merge list from text (GPT-2 / Sennrich et al. 2016): repeatedly
// merge the most frequent adjacent pair of tokens inside pre-tokenizer pieces.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include "data/tokenizer/bpe_tokenizer.h"
#include "data/tokenizer/pretoken_counts.h"

namespace kd::data {

struct BpeTrainSpec {
  // Everything counted: 256 bytes + merges + 2 specials. In [kMinBpeVocab, kMaxBpeVocab].
  std::int64_t vocab_size = 4096;
  // Threads for counting pieces (0 = OpenMP's default). The merges never depend on it.
  int threads = 0;
  // Called now and then (and once at the end) with (merges done, merges wanted).
  std::function<void(std::size_t, std::size_t)> progress;
};

// Ties between equally frequent pairs go to the lowest (left id, right id), so a corpus
// always gives the same merges. When no pair is left to merge before vocab_size is reached
// (a tiny corpus), training stops there: the tokenizer's vocab_size() is then smaller than
// asked, and its specials sit right after the last merge. Throws InputError when vocab_size
// is out of range or the corpus has no pair of adjacent bytes at all.
BpeTokenizer train_bpe(std::span<const std::string_view> documents, const BpeTrainSpec& spec);
BpeTokenizer train_bpe(const PieceCounts& counts, const BpeTrainSpec& spec);

}  // namespace kd::data
