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
    std::vector<int> order(span);
    for (int c0 = 0; c0 < cols; c0 += span) {
      const double* sc = scores.data() + std::size_t(r) * cols + c0;
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return sc[a] < sc[b]; });
      for (int k = 0; k < drop; ++k) mask[std::size_t(r) * cols + c0 + order[k]] = 0;
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
