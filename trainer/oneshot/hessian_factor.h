// GPTQ's and SparseGPT's view of a layer's Hessian H = (2/N) Σ x xᵀ: dead inputs fixed,
// dampened, inverted and factored, all in float64 (Frantar et al. 2022, section 4 "Step 3:
// Cholesky reformulation"): the upper Cholesky factor U of (H + λI)⁻¹, whose rows give each
// column's error-feedback coefficients.
#pragma once

#include <string>
#include <vector>

namespace kd::oneshot {

// Inputs j that never fired (H_jj = 0) get H_jj = 1: their weights are set to 0 by the
// caller (a dead input's weight never matters). Returns them.
std::vector<int> fix_dead_inputs(std::vector<double>& h, int n);

// H with rows and columns reordered: out[i][j] = h[perm[i]][perm[j]] (GPTQ's act-order).
std::vector<double> permute_symmetric(const std::vector<double>& h, int n, const std::vector<int>& perm);

// The columns by decreasing H_jj, ties by index: GPTQ's act-order.
std::vector<int> act_order(const std::vector<double>& h, int n);

struct HessianFactor {
  std::vector<double> u;  // (n, n) upper triangular: (H + λI)⁻¹ = UᵀU
  double damp = 0;        // the relative dampening used: λ = damp · mean(diag H)
};

// λ = damp · mean(diag h). When H + λI is not positive definite the dampening is raised
// tenfold up to three times, each retry a line in `notes` naming `layer`. InputError naming
// the layer and `damp_key` when it still fails, or at once when damp is 0 (asked for
// undampened: a retry would not be what was asked).
HessianFactor inverse_factor(std::vector<double> h, int n, double damp, const std::string& layer,
                             const std::string& damp_key, std::vector<std::string>& notes);

}  // namespace kd::oneshot
