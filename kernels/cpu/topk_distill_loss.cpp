// CE + the top-k forward KL (kernels.h, topk_distill_loss_rows) over one chunk of rows,
// fused with the gradient. Per row: (1) CE's and the tempered maxima and normalisers,
// (2) the teacher's top-k probabilities and tail mass, the student's mass outside K,
// (3) value and gradient. A per-thread byte map marks K so the tail sum is a sum of
// positive terms (never 1 − Σ_K q, which cancels when the tail is small). The student's
// logits are read before the gradient overwrites them (they may share memory).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/common/kd_math.h"
#include "kernels/common/scalar_math.h"
#include "kernels/cpu/row_max.h"
#include "kernels/kernels.h"

namespace kd::kern {

namespace {

template <class T>
LossRow topk_row(T* g, const T* s, const float* tv, const std::int32_t* ti, float lse, std::int32_t y, int v,
                 int vk, int k, const DistillLossParams& p, std::vector<std::uint8_t>& in_k, std::vector<double>& k_grad) {
  using common::exp_t;
  LossRow out;
  if (y < 0) {
    std::fill_n(g, v, T(0));
    return out;
  }
  const RowLse<T> ce_norm = row_lse(s, v);  // CE over every logit
  const T ms_all = ce_norm.max, lse1 = ce_norm.lse;
  out.ce = double(lse1) - double(s[y]);
  const T ce = T(p.ce_scale), kw = T(p.kd_scale), it = T(1.0 / p.temperature);

  const T ms = vk == v ? ms_all : row_max(s, vk);
  T zs = 0;
#pragma omp simd reduction(+ : zs)
  for (int i = 0; i < vk; ++i) zs += exp_t<T>((s[i] - ms) * it);
  const T lzs = std::log(zs);
  in_k.assign(std::size_t(vk), 0);
  T pk = 0;
  for (int j = 0; j < k; ++j) {
    in_k[std::size_t(ti[j])] = 1;
    pk += exp_t<T>(T(tv[j]) * it - T(lse));
  }
  T q_tail = 0;
  for (int i = 0; i < vk; ++i) {
    if (!in_k[std::size_t(i)]) q_tail += exp_t<T>((s[i] - ms) * it - lzs);
  }
  // an empty tail (K = the vocabulary) has no mass on either side
  const bool tail = k < vk;
  const T p_tail = tail ? std::max(T(0), T(1) - pk) : T(0);
  const T q_tail_safe = std::max(q_tail, std::numeric_limits<T>::min());
  T d = 0;
  if (p_tail > 0) d += common::kl_term(p_tail, std::log(p_tail), std::log(q_tail_safe));
  // K's terms first: g may alias s, and the pass below overwrites it
  k_grad.resize(std::size_t(k));
  for (int j = 0; j < k; ++j) {
    const int i = ti[j];
    const T lp = T(tv[j]) * it - T(lse), lq = (s[i] - ms) * it - lzs;
    const T pp = exp_t<T>(lp), q = exp_t<T>(lq);
    if (pp > 0) d += common::kl_term(pp, lp, lq);
    k_grad[std::size_t(j)] = double(kw * common::forward_kl_grad(q, pp, it));
  }
  // then CE everywhere, the tail bucket's share outside K, K's terms added back
  const T tail_ratio = p_tail / q_tail_safe;
  for (int i = 0; i < vk; ++i) {
    const T q = exp_t<T>((s[i] - ms) * it - lzs);
    g[i] = ce * exp_t<T>(s[i] - lse1) +
           (in_k[std::size_t(i)] ? T(0) : kw * common::forward_kl_grad(q, common::tail_share(q, tail_ratio), it));
  }
  for (int i = vk; i < v; ++i) g[i] = ce * exp_t<T>(s[i] - lse1);
  for (int j = 0; j < k; ++j) g[ti[j]] += T(k_grad[std::size_t(j)]);
  g[y] -= ce;
  out.kd = double(d);
  return out;
}

}  // namespace

template <class T>
void topk_distill_loss_rows(T* dlogits, LossRow* rows, const T* student, const float* t_vals,
                            const std::int32_t* t_idx, const float* t_lse, const std::int32_t* labels, int r,
                            int v, int k, const DistillLossParams& p) {
  const int vk = p.kd_vocab > 0 ? p.kd_vocab : v;
#pragma omp parallel
  {
    std::vector<std::uint8_t> in_k;
    std::vector<double> k_grad;
#pragma omp for schedule(static)
    for (int i = 0; i < r; ++i) {
      const std::size_t off = std::size_t(i) * v, toff = std::size_t(i) * std::size_t(k);
      rows[i] = topk_row<T>(dlogits + off, student + off, t_vals + toff, t_idx + toff, t_lse[i], labels[i], v, vk,
                            k, p, in_k, k_grad);
    }
  }
}

template void topk_distill_loss_rows<float>(float*, LossRow*, const float*, const float*, const std::int32_t*,
                                            const float*, const std::int32_t*, int, int, int,
                                            const DistillLossParams&);
template void topk_distill_loss_rows<double>(double*, LossRow*, const double*, const float*, const std::int32_t*,
                                             const float*, const std::int32_t*, int, int, int,
                                             const DistillLossParams&);

}  // namespace kd::kern
