#include "trainer/oneshot/hessian_factor.h"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "base/errors.h"
#include "kernels/kernels.h"

namespace kd::oneshot {

std::vector<int> fix_dead_inputs(std::vector<double>& h, int n) {
  std::vector<int> dead;
  for (int j = 0; j < n; ++j) {
    double& d = h[std::size_t(j) * n + j];
    if (d == 0.0) {
      d = 1.0;
      dead.push_back(j);
    }
  }
  return dead;
}

std::vector<double> permute_symmetric(const std::vector<double>& h, int n, const std::vector<int>& perm) {
  std::vector<double> out(std::size_t(n) * n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) out[std::size_t(i) * n + j] = h[std::size_t(perm[i]) * n + perm[j]];
  }
  return out;
}

std::vector<int> act_order(const std::vector<double>& h, int n) {
  std::vector<int> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) {
    return h[std::size_t(a) * n + a] > h[std::size_t(b) * n + b];
  });
  return perm;
}

namespace {

// (h + λI)⁻¹'s upper factor into `out`; false when not positive definite
bool try_factor(const std::vector<double>& h, int n, double lambda, std::vector<double>& out) {
  out = h;
  for (int j = 0; j < n; ++j) out[std::size_t(j) * n + j] += lambda;
  return kern::spd_inverse(out.data(), n) && kern::cholesky_upper(out.data(), n);
}

}  // namespace

HessianFactor inverse_factor(std::vector<double> h, int n, double damp, const std::string& layer,
                             const std::string& damp_key, std::vector<std::string>& notes) {
  double mean_diag = 0;
  for (int j = 0; j < n; ++j) mean_diag += h[std::size_t(j) * n + j];
  mean_diag /= std::max(n, 1);
  HessianFactor f;
  f.damp = damp;
  constexpr int kRetries = 3;
  for (int attempt = 0;; ++attempt) {
    if (try_factor(h, n, f.damp * mean_diag, f.u)) return f;
    KD_CHECK_INPUT(f.damp > 0, "{}: the Hessian of its calibration inputs is singular and {} is 0 (undampened): "
                   "set {} > 0 (0.01 is usual) or give more calibration tokens", layer, damp_key, damp_key);
    KD_CHECK_INPUT(attempt < kRetries, "{}: the Hessian of its calibration inputs stays singular with {} raised to {} "
                   "({} retries, tenfold each): give more or more varied calibration tokens", layer, damp_key,
                   f.damp, kRetries);
    notes.push_back(fmt::format("{}: the dampened Hessian is not positive definite at {} = {}; retrying with {}", layer,
                                damp_key, f.damp, f.damp * 10));
    f.damp *= 10;
  }
}

}  // namespace kd::oneshot
