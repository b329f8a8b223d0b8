// The fused CE + tempered-divergence loss over a chunk of logit rows, one block per row: the
// passes of kernels/cpu/distill_loss.cpp (maxima, normalisers, [JSD] KL(q‖m), value and
// gradient), each a strided loop and a block reduction, with kernels/common's exp and
// divergence derivatives.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/common/kd_math.h"
#include "kernels/common/scalar_math.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace kd::kern::cuda {

namespace {

constexpr unsigned kThreads = 256;

struct LossArgs {
  int v, vk;
  std::size_t teacher_ld;
  float it, ce_scale, kd_scale, beta;
  Divergence div;
};

__global__ void distill_loss_k(float* g_all, double* out, const float* s_all, const float* t_all,
                               const std::int32_t* labels, LossArgs a) {
  using common::exp_t;
  __shared__ float sh[kThreads];
  const std::size_t row = blockIdx.x;
  const float* s = s_all + row * a.v;
  const float* t = t_all ? t_all + row * a.teacher_ld : nullptr;
  float* g = g_all + row * a.v;
  const int y = labels[row];
  const int v = a.v, vk = a.vk;
  if (y < 0) {
    for (int i = threadIdx.x; i < v; i += blockDim.x) g[i] = 0.0f;
    if (threadIdx.x == 0) out[2 * row] = out[2 * row + 1] = 0.0;
    return;
  }
  const float ninf = -std::numeric_limits<float>::infinity();
  // CE over every logit
  float m = ninf;
  for (int i = threadIdx.x; i < v; i += blockDim.x) m = fmaxf(m, s[i]);
  const float ms_all = block_max(m, sh);
  float z = 0;
  for (int i = threadIdx.x; i < v; i += blockDim.x) z += exp_t<float>(s[i] - ms_all);
  const float lse1 = ms_all + logf(block_sum(z, sh));
  const float sy = s[y];  // read before g (which may alias s) is written
  const float ce = a.ce_scale;
  if (t == nullptr) {
    __syncthreads();
    for (int i = threadIdx.x; i < v; i += blockDim.x) g[i] = ce * exp_t<float>(s[i] - lse1);
    __syncthreads();
    if (threadIdx.x == 0) {
      g[y] -= ce;
      out[2 * row] = double(lse1) - double(sy);
      out[2 * row + 1] = 0.0;
    }
    return;
  }
  const float it = a.it, kw = a.kd_scale;
  float mss = ninf, mtt = ninf;
  for (int i = threadIdx.x; i < vk; i += blockDim.x) {
    mss = fmaxf(mss, s[i]);
    mtt = fmaxf(mtt, t[i]);
  }
  const float ms = vk == v ? ms_all : block_max(mss, sh);
  const float mt = block_max(mtt, sh);
  float zs = 0, zt = 0, acc = 0;
  for (int i = threadIdx.x; i < vk; i += blockDim.x) {
    const float es = exp_t<float>((s[i] - ms) * it);
    zs += es;
    zt += exp_t<float>((t[i] - mt) * it);
    if (a.div == Divergence::reverse_kl) acc += es * (s[i] - t[i]);
  }
  zs = block_sum(zs, sh);
  zt = block_sum(zt, sh);
  if (a.div == Divergence::reverse_kl) acc = block_sum(acc, sh);
  const float lzs = logf(zs), lzt = logf(zt);
  // every value of s is read (into registers or reductions) before g, which may alias it, is written
  float d = 0;
  if (a.div == Divergence::forward_kl) {
    for (int i = threadIdx.x; i < vk; i += blockDim.x) {
      const float lq = (s[i] - ms) * it - lzs, lp = (t[i] - mt) * it - lzt;
      const float q = exp_t<float>(lq), pp = exp_t<float>(lp);
      d += common::kl_term(pp, lp, lq);
      g[i] = ce * exp_t<float>(s[i] - lse1) + kw * common::forward_kl_grad(q, pp, it);
    }
  } else if (a.div == Divergence::reverse_kl) {
    const float c = (ms - mt) * it + lzs - lzt;
    const float kl = acc * it / zs - c;
    for (int i = threadIdx.x; i < vk; i += blockDim.x) {
      const float lq = (s[i] - ms) * it - lzs, lp = (t[i] - mt) * it - lzt;
      const float q = exp_t<float>(lq);
      d += common::kl_term(q, lq, lp);
      g[i] = ce * exp_t<float>(s[i] - lse1) + kw * common::reverse_kl_grad(q, lq - lp, kl, it);
    }
  } else {
    const float beta = a.beta, omb = 1.0f - beta, lb = logf(beta), lomb = logf(omb);
    float kl_pm = 0, kl_qm = 0;
    for (int i = threadIdx.x; i < vk; i += blockDim.x) {
      const float lq = (s[i] - ms) * it - lzs, lp = (t[i] - mt) * it - lzt;
      const float lm = common::log_add_exp(lb + lp, lomb + lq);
      kl_pm += common::kl_term(exp_t<float>(lp), lp, lm);
      kl_qm += common::kl_term(exp_t<float>(lq), lq, lm);
    }
    kl_pm = block_sum(kl_pm, sh);
    kl_qm = block_sum(kl_qm, sh);
    d = threadIdx.x == 0 ? beta * kl_pm + omb * kl_qm : 0.0f;
    for (int i = threadIdx.x; i < vk; i += blockDim.x) {
      const float lq = (s[i] - ms) * it - lzs, lp = (t[i] - mt) * it - lzt;
      const float lm = common::log_add_exp(lb + lp, lomb + lq);
      g[i] = ce * exp_t<float>(s[i] - lse1) + kw * common::jsd_grad(exp_t<float>(lq), lq - lm, kl_qm, omb, it);
    }
  }
  __syncthreads();
  // past vk (padding): CE's gradient alone; s there is still unread by the passes above
  for (int i = vk + threadIdx.x; i < v; i += blockDim.x) g[i] = ce * exp_t<float>(s[i] - lse1);
  if (a.div != Divergence::jensen_shannon) d = block_sum(d, sh);
  __syncthreads();
  if (threadIdx.x == 0) {
    g[y] -= ce;
    out[2 * row] = double(lse1) - double(sy);
    out[2 * row + 1] = double(d);
  }
}

}  // namespace

void distill_loss_rows(float* dlogits, LossRow* rows, const float* student, const float* teacher,
                       const std::int32_t* labels, int r, int v, const DistillLossParams& p) {
  if (r == 0) return;
  const LossArgs a{v, p.kd_vocab > 0 ? p.kd_vocab : v, p.teacher_ld > 0 ? std::size_t(p.teacher_ld) : std::size_t(v),
                   float(1.0 / p.temperature), float(p.ce_scale), float(p.kd_scale), float(p.jsd_beta), p.divergence};
  double* out = scratch_of<double>(Scratch::loss_rows, 2 * std::size_t(r));
  distill_loss_k<<<r, kThreads>>>(dlogits, out, student, teacher, labels, a);
  check_launch("distill_loss_rows");
  std::vector<double> host(2 * std::size_t(r));
  check(cudaMemcpy(host.data(), out, host.size() * sizeof(double), cudaMemcpyDeviceToHost), "distill_loss_rows (rows)");
  for (int i = 0; i < r; ++i) rows[i] = LossRow{host[2 * std::size_t(i)], host[2 * std::size_t(i) + 1]};
}

}  // namespace kd::kern::cuda
