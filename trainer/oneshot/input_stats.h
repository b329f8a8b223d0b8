// What one-shot compression needs to know about a linear layer's inputs, accumulated over
// the calibration tokens in float64: Σ x xᵀ (GPTQ's and SparseGPT's Hessian 2/N Σ x xᵀ,
// Wanda's column norms on its diagonal, AWQ's output errors), Σ |x_j| (AWQ's activation
// scale) and max |x_j| (SmoothQuant). One per input site; q/k/v share one, gate/up share one.
#pragma once

#include <cstdint>
#include <vector>

namespace kd::oneshot {

class InputStats {
 public:
  explicit InputStats(int cols);
  // x (rows, cols): rows more calibration tokens.
  void add(const float* x, int rows);

  int cols() const { return cols_; }
  std::int64_t tokens() const { return tokens_; }
  // H = (2/N) Σ x xᵀ (cols × cols), N the tokens seen: GPTQ's definition.
  std::vector<double> hessian() const;
  // Σ_n x_nj² (column j's squared L2 norm over the tokens)
  std::vector<double> squared_norms() const;
  std::vector<double> mean_abs() const;  // (1/N) Σ |x_nj|
  const std::vector<double>& max_abs() const { return max_abs_; }
  // (1/N) Σ_n ‖D x_n‖² for D (rows, cols) float64: the output error of a weight change D.
  double output_error(const double* d, int rows) const;
  // (1/N) Σ_n (Σ_j d_j x_n,c0+j)² for d of `len` entries: one output's error from the inputs
  // [c0, c0 + len) alone (AWQ's clipping search, per row and group).
  double span_error(const double* d, int c0, int len) const;

 private:
  int cols_;
  std::int64_t tokens_ = 0;
  std::vector<double> xtx_, abs_sum_, max_abs_;
};

}  // namespace kd::oneshot
