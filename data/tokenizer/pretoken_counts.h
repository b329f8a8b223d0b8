// How often each pre-tokenizer piece occurs in a corpus: the whole input of BPE training
// (merges never cross pieces, so the text itself is no longer needed).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kd::data {

struct PieceCounts {
  std::vector<std::string> pieces;    // distinct, in byte-wise lexicographic order
  std::vector<std::uint64_t> counts;  // occurrences of pieces[i]
};

// Counts the pieces of every document, in parallel over ~1 MiB chunks (large documents are
// cut only where the cut cannot change the pieces). The result does not depend on
// `threads` (0 = OpenMP's default).
PieceCounts count_pieces(std::span<const std::string_view> documents, int threads);

// Where a long document may be cut into independently pre-tokenized chunks: after a '\n'
// that follows an ASCII non-space and precedes an ASCII non-space. There the newline is a
// piece by itself whether or not the text continues, and the next piece starts after it.
bool is_safe_cut(std::string_view text, std::size_t pos);

}  // namespace kd::data
