#include "kernels/common/scalar_math.h"
#include "kernels/kernels.h"

namespace kd::kern {

template <class T>
void swiglu_forward(T* act, const T* gu, int m, int f) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < m; ++r) {
    const T* g = gu + std::size_t(r) * 2 * f;
    const T* u = g + f;
    T* a = act + std::size_t(r) * f;
#pragma omp simd
    for (int c = 0; c < f; ++c) a[c] = common::silu(g[c]) * u[c];
  }
}

template <class T>
void swiglu_backward(T* dgu, const T* dact, const T* gu, int m, int f) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < m; ++r) {
    const T* g = gu + std::size_t(r) * 2 * f;
    const T* u = g + f;
    const T* da = dact + std::size_t(r) * f;
    T* dg = dgu + std::size_t(r) * 2 * f;
    T* du = dg + f;
#pragma omp simd
    for (int c = 0; c < f; ++c) {
      const T sg = common::sigmoid(g[c]);
      du[c] = da[c] * g[c] * sg;
      dg[c] = da[c] * u[c] * sg * (T(1) + g[c] * (T(1) - sg));
    }
  }
}

template void swiglu_forward<float>(float*, const float*, int, int);
template void swiglu_forward<double>(double*, const double*, int, int);
template void swiglu_backward<float>(float*, const float*, const float*, int, int);
template void swiglu_backward<double>(double*, const double*, const double*, int, int);

}  // namespace kd::kern
