// Causal grouped-query attention, tiled by blocks of query rows (flash-style memory):
// a thread holds one block's scores (block × keys) at a time, never a (T × T) matrix
// per head. The forward saves only the per-row logsumexp; the backward recomputes the
// probabilities from it.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/common/scalar_math.h"
#include "kernels/kernels.h"

namespace kd::kern {

std::size_t attention_scratch_elems(const AttnShape& s, int threads) {
  // per thread: probabilities P and their gradient dP, each (block × seq)
  return std::size_t(threads) * 2 * std::size_t(s.block) * std::size_t(s.seq);
}

namespace {

struct Tile {
  int i0, br, nk;  // first query row, rows in the tile, keys visible to its last row
};

inline Tile tile_of(const AttnShape& s, int blk) {
  const int i0 = blk * s.block;
  const int i1 = std::min(s.seq, i0 + s.block);
  return {i0, i1 - i0, i1};
}

// p (br × nk) = softmax of the causal scores q·kᵀ·scale of one tile. With lse given
// (backward) the saved logsumexp normalises; otherwise it is computed and stored.
template <class T>
void tile_probabilities(T* p, T* lse_out, const T* lse_in, const T* q, const T* k, int ld,
                        const Tile& t, int hd, T scale) {
  gemm<T>(false, true, t.br, t.nk, hd, scale, q, ld, k, ld, T(0), p, t.nk);
  for (int ii = 0; ii < t.br; ++ii) {
    T* row = p + std::size_t(ii) * t.nk;
    const int visible = t.i0 + ii + 1;  // keys 0 .. i0+ii
    T lse;
    if (lse_in != nullptr) {
      lse = lse_in[ii];
    } else {
      T mx = -std::numeric_limits<T>::infinity();
      for (int j = 0; j < visible; ++j) mx = std::max(mx, row[j]);
      T sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int j = 0; j < visible; ++j) sum += common::exp_t<T>(row[j] - mx);
      lse = mx + std::log(sum);
      lse_out[ii] = lse;
    }
#pragma omp simd
    for (int j = 0; j < visible; ++j) row[j] = common::exp_t<T>(row[j] - lse);
    for (int j = visible; j < t.nk; ++j) row[j] = T(0);
  }
}

}  // namespace

template <class T>
void attention_forward(T* out, T* lse, const T* qkv, const AttnShape& s, T* scratch) {
  const int nblk = (s.seq + s.block - 1) / s.block;
  const int group = s.heads / s.kv_heads;
  const int ldo = s.heads * s.head_dim;
  const T scale = T(1) / std::sqrt(T(s.head_dim));
  const std::size_t per_thread = 2 * std::size_t(s.block) * s.seq;
  const int tasks = s.batch * s.heads * nblk;
  // dynamic: later tiles see more keys; every task writes its own rows, so the result
  // does not depend on which thread ran it.
#pragma omp parallel for schedule(dynamic, 1)
  for (int task = 0; task < tasks; ++task) {
    const int blk = task % nblk, h = (task / nblk) % s.heads, b = task / (nblk * s.heads);
    const int g = h / group;
    const Tile t = tile_of(s, blk);
    T* p = scratch + per_thread * omp_get_thread_num();
    const std::size_t row0 = std::size_t(b) * s.seq;
    const T* q = qkv + (row0 + t.i0) * s.ld_qkv + s.q_col + h * s.head_dim;
    const T* k = qkv + row0 * s.ld_qkv + s.k_col + g * s.head_dim;
    const T* v = qkv + row0 * s.ld_qkv + s.v_col + g * s.head_dim;
    T* lse_t = lse + (std::size_t(b) * s.heads + h) * s.seq + t.i0;
    tile_probabilities<T>(p, lse_t, nullptr, q, k, s.ld_qkv, t, s.head_dim, scale);
    T* o = out + (row0 + t.i0) * ldo + h * s.head_dim;
    gemm<T>(false, false, t.br, s.head_dim, t.nk, T(1), p, t.nk, v, s.ld_qkv, T(0), o, ldo);
  }
}

template <class T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const T* lse,
                        const AttnShape& s, T* scratch) {
  const int nblk = (s.seq + s.block - 1) / s.block;
  const int group = s.heads / s.kv_heads;
  const int ldo = s.heads * s.head_dim;
  const int hd = s.head_dim;
  const T scale = T(1) / std::sqrt(T(hd));
  const std::size_t per_thread = 2 * std::size_t(s.block) * s.seq;
  const int tasks = s.batch * s.kv_heads;
  // One task per (batch, kv head): it alone accumulates that head's dK and dV, over
  // its query heads and tiles in a fixed order (deterministic, no atomics).
#pragma omp parallel for schedule(dynamic, 1)
  for (int task = 0; task < tasks; ++task) {
    const int g = task % s.kv_heads, b = task / s.kv_heads;
    T* p = scratch + per_thread * omp_get_thread_num();
    T* dp = p + std::size_t(s.block) * s.seq;
    const std::size_t row0 = std::size_t(b) * s.seq;
    const T* k = qkv + row0 * s.ld_qkv + s.k_col + g * hd;
    const T* v = qkv + row0 * s.ld_qkv + s.v_col + g * hd;
    T* dk = dqkv + row0 * s.ld_qkv + s.k_col + g * hd;
    T* dv = dqkv + row0 * s.ld_qkv + s.v_col + g * hd;
    for (int i = 0; i < s.seq; ++i) {
      std::fill_n(dk + std::size_t(i) * s.ld_qkv, hd, T(0));
      std::fill_n(dv + std::size_t(i) * s.ld_qkv, hd, T(0));
    }
    for (int h = g * group; h < (g + 1) * group; ++h) {
      for (int blk = 0; blk < nblk; ++blk) {
        const Tile t = tile_of(s, blk);
        const T* q = qkv + (row0 + t.i0) * s.ld_qkv + s.q_col + h * hd;
        T* dq = dqkv + (row0 + t.i0) * s.ld_qkv + s.q_col + h * hd;
        const T* o = out + (row0 + t.i0) * ldo + h * hd;
        const T* dO = dout + (row0 + t.i0) * ldo + h * hd;
        const T* lse_t = lse + (std::size_t(b) * s.heads + h) * s.seq + t.i0;
        tile_probabilities<T>(p, nullptr, lse_t, q, k, s.ld_qkv, t, hd, scale);
        // dP = dO · Vᵀ ;  dS = P ∘ (dP − rowsum(dO ∘ O))
        gemm<T>(false, true, t.br, t.nk, hd, T(1), dO, ldo, v, s.ld_qkv, T(0), dp, t.nk);
        for (int ii = 0; ii < t.br; ++ii) {
          const T* orow = o + std::size_t(ii) * ldo;
          const T* grow = dO + std::size_t(ii) * ldo;
          T di = 0;
#pragma omp simd reduction(+ : di)
          for (int c = 0; c < hd; ++c) di += orow[c] * grow[c];
          T* dprow = dp + std::size_t(ii) * t.nk;
          const T* prow = p + std::size_t(ii) * t.nk;
#pragma omp simd
          for (int j = 0; j < t.nk; ++j) dprow[j] = prow[j] * (dprow[j] - di);
        }
        // dQ = scale·dS·K ; dK += scale·dSᵀ·Q ; dV += Pᵀ·dO
        gemm<T>(false, false, t.br, hd, t.nk, scale, dp, t.nk, k, s.ld_qkv, T(0), dq, s.ld_qkv);
        gemm<T>(true, false, t.nk, hd, t.br, scale, dp, t.nk, q, s.ld_qkv, T(1), dk, s.ld_qkv);
        gemm<T>(true, false, t.nk, hd, t.br, T(1), p, t.nk, dO, ldo, T(1), dv, s.ld_qkv);
      }
    }
  }
}

template void attention_forward<float>(float*, float*, const float*, const AttnShape&, float*);
template void attention_forward<double>(double*, double*, const double*, const AttnShape&,
                                        double*);
template void attention_backward<float>(float*, const float*, const float*, const float*,
                                        const float*, const AttnShape&, float*);
template void attention_backward<double>(double*, const double*, const double*, const double*,
                                         const double*, const AttnShape&, double*);

}  // namespace kd::kern
