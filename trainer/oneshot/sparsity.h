// A sparsity target of one-shot pruning: a fraction of every output row (unstructured), or
// n zeros in every m consecutive inputs of a row (N:M, e.g. 2:4 for sparse tensor cores).
#pragma once

#include <cstdint>
#include <string>

namespace kd::oneshot {

struct Sparsity {
  double fraction = 0;  // unstructured: the pruned fraction of each row (of each block, SparseGPT)
  int n = 0, m = 0;     // N:M: n pruned of every m (m = 0: unstructured)
  bool nm() const { return m > 0; }
  std::string text() const;  // "50%" or "2:4"
};

// Marks in pruned[0..m) the n least of scores[0..m), ties to the lower index (the rest 0):
// every one-shot mask's choice.
void mark_smallest(const double* scores, int m, int n, std::uint8_t* pruned);

// "2:4" → {n 2, m 4}; InputError naming `key` unless 0 < n < m.
Sparsity parse_nm(const std::string& text, const std::string& key);
// InputError naming `key` and `layer` when an N:M pattern's m does not divide the row of
// `cols` inputs.
void check_sparsity_for(const Sparsity& s, int cols, const std::string& layer, const std::string& key);

}  // namespace kd::oneshot
