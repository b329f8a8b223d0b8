#include "trainer/oneshot/wanda.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kd::oneshot {

namespace {

// scores (rows, cols) → the mask keeping all but each row's (or each m-group's) least
std::vector<std::uint8_t> row_mask(const std::vector<double>& scores, int rows, int cols, const Sparsity& s) {
  std::vector<std::uint8_t> mask(scores.size(), 1);
  const int span = s.nm() ? s.m : cols;
  const int drop = s.nm() ? s.n : int(std::floor(s.fraction * cols));
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    std::vector<std::uint8_t> pruned(span);
    for (int c0 = 0; c0 < cols; c0 += span) {
      const std::size_t at = std::size_t(r) * cols + c0;
      mark_smallest(scores.data() + at, span, drop, pruned.data());
      for (int k = 0; k < span; ++k) mask[at + k] = pruned[k] ? 0 : 1;
    }
  }
  return mask;
}

}  // namespace

std::vector<std::uint8_t> wanda_mask(const float* w, int rows, int cols, const std::vector<double>& squared_norms,
                                     const Sparsity& s) {
  std::vector<double> scores(std::size_t(rows) * cols);
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < cols; ++j) {
      const std::size_t i = std::size_t(r) * cols + j;
      scores[i] = std::fabs(double(w[i])) * std::sqrt(squared_norms[j]);
    }
  }
  return row_mask(scores, rows, cols, s);
}

std::vector<std::uint8_t> magnitude_mask(const float* w, int rows, int cols, const Sparsity& s) {
  std::vector<double> scores(w, w + std::size_t(rows) * cols);
  for (double& v : scores) v = std::fabs(v);
  return row_mask(scores, rows, cols, s);
}

}  // namespace kd::oneshot
