#include "trainer/oneshot/input_stats.h"

#include <algorithm>
#include <cmath>

#include "base/errors.h"
#include "kernels/kernels.h"

namespace kd::oneshot {

InputStats::InputStats(int cols)
    : cols_(cols), xtx_(std::size_t(cols) * cols, 0.0), abs_sum_(cols, 0.0), max_abs_(cols, 0.0) {}

void InputStats::add(const float* x, int rows) {
  constexpr int kTile = 256;  // rows converted to double at a time
  std::vector<double> tile(std::size_t(kTile) * cols_);
  for (int r0 = 0; r0 < rows; r0 += kTile) {
    const int n = std::min(kTile, rows - r0);
    for (std::size_t i = 0; i < std::size_t(n) * cols_; ++i) tile[i] = x[std::size_t(r0) * cols_ + i];
    kern::syrk_accumulate(xtx_.data(), tile.data(), n, cols_, 1.0);
    for (int r = 0; r < n; ++r) {
      const double* row = tile.data() + std::size_t(r) * cols_;
      for (int j = 0; j < cols_; ++j) {
        abs_sum_[j] += std::fabs(row[j]);
        max_abs_[j] = std::max(max_abs_[j], std::fabs(row[j]));
      }
    }
  }
  tokens_ += rows;
}

std::vector<double> InputStats::hessian() const {
  KD_ASSERT(tokens_ > 0, "a Hessian of no calibration tokens");
  std::vector<double> h(xtx_);
  const double s = 2.0 / double(tokens_);
  for (double& v : h) v *= s;
  return h;
}

std::vector<double> InputStats::squared_norms() const {
  std::vector<double> out(cols_);
  for (int j = 0; j < cols_; ++j) out[j] = xtx_[std::size_t(j) * cols_ + j];
  return out;
}

std::vector<double> InputStats::mean_abs() const {
  std::vector<double> out(abs_sum_);
  for (double& v : out) v /= double(std::max<std::int64_t>(tokens_, 1));
  return out;
}

double InputStats::output_error(const double* d, int rows) const {
  // Σ_n ‖D x_n‖² = Σ_r d_r (Σ x xᵀ) d_rᵀ
  std::vector<double> dh(std::size_t(rows) * cols_);
  kern::gemm<double>(false, false, rows, cols_, cols_, 1.0, d, cols_, xtx_.data(), cols_, 0.0, dh.data(), cols_);
  double total = 0;
  for (std::size_t i = 0; i < dh.size(); ++i) total += dh[i] * d[i];
  return total / double(std::max<std::int64_t>(tokens_, 1));
}

double InputStats::span_error(const double* d, int c0, int len) const {
  double total = 0;
  for (int i = 0; i < len; ++i) {
    const double* row = xtx_.data() + std::size_t(c0 + i) * cols_ + c0;
    double acc = 0;
    for (int j = 0; j < len; ++j) acc += row[j] * d[j];
    total += acc * d[i];
  }
  return total / double(std::max<std::int64_t>(tokens_, 1));
}

}  // namespace kd::oneshot
