// GEMM on OpenBLAS, and the linear layer with transposes chosen so nothing is copied:
// weights stay in [out, in] layout for the forward, dx and dW.
#include <cblas.h>

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

template <class T>
void linear_forward(T* y, const T* x, const T* w, int m, int n, int k, bool accumulate) {
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
