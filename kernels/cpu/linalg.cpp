// float64 factorisations for one-shot compression: OpenBLAS's LAPACK (dpotrf/dpotri) and
// dsyrk. LAPACK is column-major: a row-major symmetric matrix is the same matrix, and its
// row-major upper triangle is LAPACK's lower one.
#include <cblas.h>

#include <vector>

#include "kernels/kernels.h"

extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info);
}

namespace kd::kern {

void syrk_accumulate(double* c, const double* x, int rows, int n, double alpha) {
  if (rows == 0 || n == 0) return;
  // the upper triangle (row-major), then mirrored
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, rows, alpha, x, n, 1.0, c, n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < i; ++j) c[std::size_t(i) * n + j] = c[std::size_t(j) * n + i];
  }
}

bool spd_inverse(double* a, int n) {
  if (n == 0) return true;
  int info = 0;
  const char lo = 'L';  // LAPACK's lower = row-major upper
  dpotrf_(&lo, &n, a, &n, &info);
  if (info != 0) return false;
  dpotri_(&lo, &n, a, &n, &info);
  if (info != 0) return false;
  for (int i = 0; i < n; ++i) {  // dpotri fills one triangle: mirror it
    for (int j = 0; j < i; ++j) a[std::size_t(i) * n + j] = a[std::size_t(j) * n + i];
  }
  return true;
}

bool cholesky_upper(double* a, int n) {
  if (n == 0) return true;
  int info = 0;
  const char lo = 'L';  // column-major L with a = L Lᵀ is row-major U = Lᵀ with a = UᵀU
  dpotrf_(&lo, &n, a, &n, &info);
  if (info != 0) return false;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < i; ++j) a[std::size_t(i) * n + j] = 0.0;
  }
  return true;
}

}  // namespace kd::kern
