#include <omp.h>

#include <cmath>
#include <algorithm>

#include "kernels/kernels.h"

namespace kd::kern {

template <class T>
void rmsnorm_forward(T* y, T* rstd, const T* x, const T* w, int m, int d, T eps) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < m; ++r) {
    const T* xr = x + std::size_t(r) * d;
    T* yr = y + std::size_t(r) * d;
    T ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int c = 0; c < d; ++c) ss += xr[c] * xr[c];
    const T s = T(1) / std::sqrt(ss / T(d) + eps);
    rstd[r] = s;
#pragma omp simd
    for (int c = 0; c < d; ++c) yr[c] = xr[c] * s * w[c];
  }
}

template <class T>
void rmsnorm_backward(T* dx, T* dw, const T* dy, const T* dresid, const T* x, const T* rstd,
                      const T* w, int m, int d) {
  // x̂ = x·s;  y = x̂·w;  dx = s·(w·dy − x̂·mean(w·dy·x̂));  dw += Σ_rows dy·x̂
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int r = 0; r < m; ++r) {
      const T* xr = x + std::size_t(r) * d;
      const T* gr = dy + std::size_t(r) * d;
      T* dxr = dx + std::size_t(r) * d;
      const T s = rstd[r];
      T dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int c = 0; c < d; ++c) dot += gr[c] * w[c] * xr[c];
      const T k = dot * s * s / T(d);
      const T* rr = dresid != nullptr ? dresid + std::size_t(r) * d : nullptr;
#pragma omp simd
      for (int c = 0; c < d; ++c) dxr[c] = (rr ? rr[c] : T(0)) + s * (gr[c] * w[c] - xr[c] * k);
    }
    // dw by column slices: each thread sums its columns over all rows in row order, so
    // the result needs no scratch and does not depend on the thread count.
    const int nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int per = (d + nt - 1) / nt;
    const int c0 = std::min(d, id * per), c1 = std::min(d, c0 + per);
    for (int r = 0; r < m; ++r) {
      const T* xr = x + std::size_t(r) * d;
      const T* gr = dy + std::size_t(r) * d;
      const T s = rstd[r];
#pragma omp simd
      for (int c = c0; c < c1; ++c) dw[c] += gr[c] * xr[c] * s;
    }
  }
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int, int, float);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int, int,
                                      double);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*,
                                      const float*, const float*, int, int);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*,
                                       const double*, const double*, const double*, int, int);

}  // namespace kd::kern
