// Attention of decoded rows against a KV cache: one (row, head) per task, the scores of
// positions 0..pos in the thread's scratch, an exact softmax (max subtracted), then the
// weighted sum of the cached values. Memory-bound like the GEMVs around it at batch 1.
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "kernels/kernels.h"

namespace kd::kern {

template <class T>
void attention_cached(T* out, const T* q, int ld, const T* k_cache, const T* v_cache, const int* slot,
                      const int* pos, int rows, const CachedAttnShape& s, T* scratch, int threads) {
  const int hd = s.head_dim, group = s.heads / s.kv_heads;
  const T scale = T(1) / std::sqrt(T(hd));
  const std::size_t head_elems = std::size_t(s.capacity) * hd;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int task = 0; task < rows * s.heads; ++task) {
    const int r = task / s.heads, h = task % s.heads, kvh = h / group, n = pos[r] + 1;
    const std::size_t base = (std::size_t(slot[r]) * s.kv_heads + kvh) * head_elems;
    const T* k = k_cache + base;
    const T* v = v_cache + base;
    const T* qh = q + std::size_t(r) * ld + std::size_t(h) * hd;
    T* p = scratch + std::size_t(omp_get_thread_num()) * s.capacity;
    T mx = -INFINITY;
    for (int j = 0; j < n; ++j) {
      const T* kj = k + std::size_t(j) * hd;
      T dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int c = 0; c < hd; ++c) dot += qh[c] * kj[c];
      p[j] = dot * scale;
      mx = std::max(mx, p[j]);
    }
    T sum = 0;
    for (int j = 0; j < n; ++j) {
      p[j] = std::exp(p[j] - mx);
      sum += p[j];
    }
    T* o = out + std::size_t(r) * s.heads * hd + std::size_t(h) * hd;
    std::fill_n(o, hd, T(0));
    for (int j = 0; j < n; ++j) {
      const T* vj = v + std::size_t(j) * hd;
      const T w = p[j] / sum;
#pragma omp simd
      for (int c = 0; c < hd; ++c) o[c] += w * vj[c];
    }
  }
}

template void attention_cached<float>(float*, const float*, int, const float*, const float*, const int*, const int*,
                                      int, const CachedAttnShape&, float*, int);
template void attention_cached<double>(double*, const double*, int, const double*, const double*, const int*,
                                       const int*, int, const CachedAttnShape&, double*, int);

}  // namespace kd::kern
