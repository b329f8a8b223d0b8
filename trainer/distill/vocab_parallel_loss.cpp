// The vocab-parallel head and loss of a tensor-parallel group (DistillStep::
// vocab_parallel_head): rank r computes the student's and the teacher's logits on its
// vocabulary slice only; per row, the maxima, the sums of exponentials, the label's logit
// and the forward-KL partial sums are reduced over the group (3 small all-reduces per
// chunk of rows), each rank forms the gradient of its slice, the hidden state's gradient
// is all-reduced, and the head's gradient rows of the slice are gathered at the end of the
// step (finish_step). Forward KL and CE only; the sums run in double.
#include <cmath>
#include <limits>

#include "kernels/common/kd_math.h"
#include "kernels/kernels.h"
#include "trainer/distill/distill_step.h"
#include "base/errors.h"

namespace kd {

template <>
void DistillStep<float>::vocab_parallel_head(const float* head_in, const float* sp, const float* tp,
                                             const std::int32_t* labels, const kern::DistillLossParams& lp, bool kd) {
  const ModelSpec& s = student_.spec();
  const int m = batch_ * seq_, d = s.d_model, dt = kd ? teacher_->spec().d_model : 0;
  const std::size_t v0 = tp_->vocab_begin(), vr = tp_->vocab_count();
  dist::Comm& g = tp_->group();
  const double it = 1.0 / lp.temperature;
  const float* shead = sp + student_.head() + v0 * std::size_t(d);
  if (head_grad_.size() != vr * std::size_t(d)) head_grad_.assign(vr * std::size_t(d), 0.0f);
  const int rows = spec_.logit_chunk_rows;
  std::vector<double> mx, sums, kl;
  for (int r0 = 0; r0 < m; r0 += rows) {
    const int r = std::min(rows, m - r0);
    const float* hs = head_in + std::size_t(r0) * d;
    kern::linear_forward<float>(zs_, hs, shead, r, int(vr), d, false);
    if (kd) tp_->slice_logits(zt_, tact_.final_norm + std::size_t(r0) * dt, tp, r);
    // 1. the row maxima (student; teacher)
    mx.assign(std::size_t(r) * 2, -std::numeric_limits<double>::infinity());
#pragma omp parallel for schedule(static)
    for (int i = 0; i < r; ++i) {
      const float* zs = zs_ + std::size_t(i) * vr;
      const float* zt = kd ? zt_ + std::size_t(i) * vr : nullptr;
      for (std::size_t j = 0; j < vr; ++j) {
        mx[2 * std::size_t(i)] = std::max(mx[2 * std::size_t(i)], double(zs[j]));
        if (zt) mx[2 * std::size_t(i) + 1] = std::max(mx[2 * std::size_t(i) + 1], double(zt[j]));
      }
    }
    g.all_reduce_max(mx);
    // 2. sums of exponentials (CE at T = 1; both tempered) and the label's logit
    sums.assign(std::size_t(r) * 4, 0.0);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < r; ++i) {
      const float* zs = zs_ + std::size_t(i) * vr;
      const float* zt = kd ? zt_ + std::size_t(i) * vr : nullptr;
      const double ms = mx[2 * std::size_t(i)], mt = mx[2 * std::size_t(i) + 1];
      double* o = sums.data() + 4 * std::size_t(i);
      for (std::size_t j = 0; j < vr; ++j) {
        o[0] += std::exp(double(zs[j]) - ms);
        if (zt) {
          o[1] += std::exp((double(zs[j]) - ms) * it);
          o[2] += std::exp((double(zt[j]) - mt) * it);
        }
      }
      const std::int32_t y = labels[r0 + i];
      if (y >= 0 && std::size_t(y) >= v0 && std::size_t(y) < v0 + vr) o[3] = zs[std::size_t(y) - v0];
    }
    g.all_reduce_sum(sums);
    // 3. forward KL partial sums
    kl.assign(std::size_t(r), 0.0);
    if (kd) {
#pragma omp parallel for schedule(static)
      for (int i = 0; i < r; ++i) {
        const float* zs = zs_ + std::size_t(i) * vr;
        const float* zt = zt_ + std::size_t(i) * vr;
        const double ms = mx[2 * std::size_t(i)], mt = mx[2 * std::size_t(i) + 1];
        const double lzs = std::log(sums[4 * std::size_t(i) + 1]), lzt = std::log(sums[4 * std::size_t(i) + 2]);
        double acc = 0;
        for (std::size_t j = 0; j < vr; ++j) {
          const double lq = (double(zs[j]) - ms) * it - lzs, lp_ = (double(zt[j]) - mt) * it - lzt;
          acc += common::kl_term(std::exp(lp_), lp_, lq);
        }
        kl[std::size_t(i)] = acc;
      }
      g.all_reduce_sum(kl);
    }
    // the gradient of this rank's slice (in place of the student's logits)
#pragma omp parallel for schedule(static)
    for (int i = 0; i < r; ++i) {
      float* zs = zs_ + std::size_t(i) * vr;
      const float* zt = kd ? zt_ + std::size_t(i) * vr : nullptr;
      const std::int32_t y = labels[r0 + i];
      kern::LossRow& row = rows_[std::size_t(r0 + i)];
      if (y < 0) {
        row = {};
        std::fill_n(zs, vr, 0.0f);
        continue;
      }
      const double* o = sums.data() + 4 * std::size_t(i);
      const double ms = mx[2 * std::size_t(i)], mt = mx[2 * std::size_t(i) + 1];
      const double lse1 = ms + std::log(o[0]);
      row.ce = lse1 - o[3];
      row.kd = kd ? kl[std::size_t(i)] : 0.0;
      const double lzs = kd ? std::log(o[1]) : 0.0, lzt = kd ? std::log(o[2]) : 0.0;
      for (std::size_t j = 0; j < vr; ++j) {
        double gj = lp.ce_scale * std::exp(double(zs[j]) - lse1);
        if (zt) {
          const double q = std::exp((double(zs[j]) - ms) * it - lzs), p = std::exp((double(zt[j]) - mt) * it - lzt);
          gj += lp.kd_scale * common::forward_kl_grad(q, p, it);
        }
        zs[j] = float(gj);
      }
      if (std::size_t(y) >= v0 && std::size_t(y) < v0 + vr) zs[std::size_t(y) - v0] -= float(lp.ce_scale);
    }
    // this slice's part of the hidden-state gradient; its head rows' gradient
    kern::linear_backward<float>(dfinal_ + std::size_t(r0) * d, head_grad_.data(), zs_, hs, shead, r, int(vr), d,
                                 false);
  }
  g.all_reduce_sum(std::span<float>(dfinal_, std::size_t(m) * d));
}

template <>
void DistillStep<float>::finish_step(float* grads) {
  if (head_grad_.empty()) return;
  const std::size_t d = std::size_t(student_.spec().d_model);
  std::vector<std::size_t> counts;
  for (const std::size_t c : tp_->vocab_counts()) counts.push_back(c * d);
  std::vector<float> all(std::size_t(student_.spec().vocab) * d);
  tp_->group().all_gather_v(head_grad_, all, counts);  // slices in vocabulary order: the head's rows
  float* g = grads + student_.head();
#pragma omp parallel for schedule(static)
  for (std::size_t i = 0; i < all.size(); ++i) g[i] += all[i];
  std::fill(head_grad_.begin(), head_grad_.end(), 0.0f);
}

template <>
void DistillStep<double>::finish_step(double*) {}

}  // namespace kd
