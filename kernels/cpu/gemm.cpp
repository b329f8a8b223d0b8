// GEMM on OpenBLAS, and the linear layer with transposes chosen so nothing is copied:
// weights stay in [out, in] layout for the forward, dx and dW.
#include <cblas.h>

#include <cstddef>

#include "kernels/kernels.h"

namespace kd::kern {

namespace {
CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }
}  // namespace

template <>
void gemm<float>(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <>
void gemm<double>(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda,
                  const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, tr(ta), tr(tb), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

namespace {
// A few rows (decoding: one per sequence) against a large weight: memory-bound, so each
// weight row is read once for all m inputs (which stay in cache), four inputs per pass over
// it. OpenBLAS's sgemm packs the whole weight first even for m = 1: measured ~10x slower than
// this at m = 1 (768 × 4096), and 2.4x slower decoding a batch of 32 sequences of a 4M model.
constexpr int kSmallM = 32;

template <class T>
void linear_forward_small_m(T* y, const T* x, const T* w, int m, int n, int k, bool accumulate) {
#pragma omp parallel for schedule(static)
  for (int j = 0; j < n; ++j) {
    const T* wj = w + std::size_t(j) * k;
    int i = 0;
    for (; i + 4 <= m; i += 4) {
      const T* x0 = x + std::size_t(i) * k;
      const T *x1 = x0 + k, *x2 = x1 + k, *x3 = x2 + k;
      T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
      for (int c = 0; c < k; ++c) {
        const T wc = wj[c];
        s0 += wc * x0[c];
        s1 += wc * x1[c];
        s2 += wc * x2[c];
        s3 += wc * x3[c];
      }
      const T s[4] = {s0, s1, s2, s3};
      for (int r = 0; r < 4; ++r) {
        T& out = y[std::size_t(i + r) * n + j];
        out = accumulate ? out + s[r] : s[r];
      }
    }
    for (; i < m; ++i) {
      const T* xi = x + std::size_t(i) * k;
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (int c = 0; c < k; ++c) s += wj[c] * xi[c];
      T& out = y[std::size_t(i) * n + j];
      out = accumulate ? out + s : s;
    }
  }
}
}  // namespace

template <class T>
void linear_forward(T* y, const T* x, const T* w, int m, int n, int k, bool accumulate) {
  if (m <= kSmallM) {
    linear_forward_small_m(y, x, w, m, n, k, accumulate);
    return;
  }
  gemm<T>(false, true, m, n, k, T(1), x, k, w, k, accumulate ? T(1) : T(0), y, n);
}

template <class T>
void linear_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, int m, int n, int k,
                     bool accumulate_dx) {
  if (dx != nullptr) gemm<T>(false, false, m, k, n, T(1), dy, n, w, k, accumulate_dx ? T(1) : T(0), dx, k);
  if (dw != nullptr) gemm<T>(true, false, n, k, m, T(1), dy, n, x, k, T(1), dw, k);
}

template void linear_forward<float>(float*, const float*, const float*, int, int, int, bool);
template void linear_forward<double>(double*, const double*, const double*, int, int, int, bool);
template void linear_backward<float>(float*, float*, const float*, const float*, const float*, int,
                                     int, int, bool);
template void linear_backward<double>(double*, double*, const double*, const double*, const double*,
                                      int, int, int, bool);

}  // namespace kd::kern
