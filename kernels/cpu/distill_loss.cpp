// CE + temperature-scaled divergence over one chunk of rows of logits, fused with the
// gradient: each row is read a few times from cache and written once as d loss / d s.
// Row passes: (1) maxima, (2) normalisers, (3) [JSD only] KL(q‖m), (4) value + gradient.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/common/kd_math.h"
#include "kernels/common/scalar_math.h"
#include "kernels/cpu/row_max.h"
#include "kernels/kernels.h"

namespace kd::kern {

namespace {

template <class T>
LossRow loss_row(T* g, const T* s, const T* t, std::int32_t y, bool kd_only, int v, int vk,
                 const DistillLossParams& p) {
  using common::exp_t;
  LossRow out;
  if (y < 0) {
    std::fill_n(g, v, T(0));
    return out;
  }
  const RowLse<T> ce_norm = row_lse(s, v);  // CE over every logit
  const T ms_all = ce_norm.max, lse1 = ce_norm.lse;
  out.ce = kd_only ? 0.0 : double(lse1) - double(s[y]);
  const T ce = T(kd_only ? 0.0 : p.ce_scale);

  if (t == nullptr) {
#pragma omp simd
    for (int i = 0; i < v; ++i) g[i] = ce * exp_t<T>(s[i] - lse1);
    g[y] -= ce;
    return out;
  }

  // The divergence runs over the first vk entries (padding beyond them is ignored);
  // CE, above, over all v. Past vk the gradient is CE's alone.
  for (int i = vk; i < v; ++i) g[i] = ce * exp_t<T>(s[i] - lse1);
  const T ms = vk == v ? ms_all : row_max(s, vk);
  const T it = T(1.0 / p.temperature);
  const T kw = T(kd_only ? p.kd_only_scale : p.kd_scale);
  const T mt = row_max(t, vk);
  T zs = 0, zt = 0, acc = 0;
  if (p.divergence == Divergence::reverse_kl) {
#pragma omp simd reduction(+ : zs, zt, acc)
    for (int i = 0; i < vk; ++i) {
      const T es = exp_t<T>((s[i] - ms) * it);
      zs += es;
      zt += exp_t<T>((t[i] - mt) * it);
      acc += es * (s[i] - t[i]);
    }
  } else {
#pragma omp simd reduction(+ : zs, zt)
    for (int i = 0; i < vk; ++i) {
      zs += exp_t<T>((s[i] - ms) * it);
      zt += exp_t<T>((t[i] - mt) * it);
    }
  }
  // log q_i = (s_i − ms)·it − lzs ;  log p_i = (t_i − mt)·it − lzt
  const T lzs = std::log(zs), lzt = std::log(zt);
  T d = 0;
  switch (p.divergence) {
    case Divergence::forward_kl: {
#pragma omp simd reduction(+ : d)
      for (int i = 0; i < vk; ++i) {
        const T lq = (s[i] - ms) * it - lzs, lp = (t[i] - mt) * it - lzt;
        const T q = exp_t<T>(lq), pp = exp_t<T>(lp);
        d += common::kl_term(pp, lp, lq);
        g[i] = ce * exp_t<T>(s[i] - lse1) + kw * common::forward_kl_grad(q, pp, it);
      }
      break;
    }
    case Divergence::reverse_kl: {
      // KL(q‖p) from pass 2 (used only inside the gradient, where its rounding
      // cancels: Σ q = 1); the reported value is summed element by element below.
      const T c = (ms - mt) * it + lzs - lzt;  // log p_i − log q_i = (t_i − s_i)·it + c
      const T kl = acc * it / zs - c;
#pragma omp simd reduction(+ : d)
      for (int i = 0; i < vk; ++i) {
        const T lq = (s[i] - ms) * it - lzs, lp = (t[i] - mt) * it - lzt;
        const T q = exp_t<T>(lq);
        d += common::kl_term(q, lq, lp);
        g[i] = ce * exp_t<T>(s[i] - lse1) + kw * common::reverse_kl_grad(q, lq - lp, kl, it);
      }
      break;
    }
    case Divergence::jensen_shannon: {
      const T beta = T(p.jsd_beta), omb = T(1) - beta;
      const T lb = std::log(beta), lomb = std::log(omb);
      T kl_pm = 0, kl_qm = 0;
      for (int i = 0; i < vk; ++i) {
        const T lq = (s[i] - ms) * it - lzs, lp = (t[i] - mt) * it - lzt;
        const T lm = common::log_add_exp(lb + lp, lomb + lq);
        kl_pm += common::kl_term(exp_t<T>(lp), lp, lm);
        kl_qm += common::kl_term(exp_t<T>(lq), lq, lm);
      }
      d = beta * kl_pm + omb * kl_qm;
      for (int i = 0; i < vk; ++i) {
        const T lq = (s[i] - ms) * it - lzs, lp = (t[i] - mt) * it - lzt;
        const T lm = common::log_add_exp(lb + lp, lomb + lq);
        g[i] = ce * exp_t<T>(s[i] - lse1) +
               kw * common::jsd_grad(exp_t<T>(lq), lq - lm, kl_qm, omb, it);
      }
      break;
    }
  }
  g[y] -= ce;
  out.kd = double(d);
  return out;
}

}  // namespace

template <class T>
void distill_loss_rows(T* dlogits, LossRow* rows, const T* student, const T* teacher,
                       const std::int32_t* labels, int r, int v, const DistillLossParams& p) {
  const int vk = p.kd_vocab > 0 ? p.kd_vocab : v;
  const std::size_t tld = p.teacher_ld > 0 ? std::size_t(p.teacher_ld) : std::size_t(v);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < r; ++i) {
    const std::size_t off = std::size_t(i) * v;
    rows[i] = loss_row<T>(dlogits + off, student + off, teacher ? teacher + i * tld : nullptr,
                          labels[i], p.kd_only != nullptr && p.kd_only[i] != 0, v, vk, p);
  }
}

template void distill_loss_rows<float>(float*, LossRow*, const float*, const float*,
                                       const std::int32_t*, int, int, const DistillLossParams&);
template void distill_loss_rows<double>(double*, LossRow*, const double*, const double*,
                                        const std::int32_t*, int, int, const DistillLossParams&);

}  // namespace kd::kern
