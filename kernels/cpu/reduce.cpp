#include <algorithm>
#include <cmath>

#include "kernels/cpu/ordered_sum.h"
#include "kernels/kernels.h"

namespace kd::kern {

template <class T>
double sum_squares(const T* x, std::size_t n) {
  return ordered_chunk_sum(n, std::size_t(1) << 14, [x](std::size_t b, std::size_t e) {
    double s = 0;
    for (std::size_t i = b; i < e; ++i) s += double(x[i]) * double(x[i]);
    return s;
  });
}

template <class T>
std::ptrdiff_t first_non_finite(const T* x, std::size_t n) {
  // Fast path: a NaN or Inf anywhere makes the sum of x·0 NaN.
  T probe = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : probe)
  for (std::size_t i = 0; i < n; ++i) probe += x[i] * T(0);
  if (probe == T(0)) return -1;
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return std::ptrdiff_t(i);
  }
  return -1;
}

template <class T>
void scale_inplace(T* x, std::size_t n, T s) {
#pragma omp parallel for simd schedule(static)
  for (std::size_t i = 0; i < n; ++i) x[i] *= s;
}

template <class T>
void add_inplace(T* y, const T* x, std::size_t n) {
#pragma omp parallel for simd schedule(static)
  for (std::size_t i = 0; i < n; ++i) y[i] += x[i];
}

template double sum_squares<float>(const float*, std::size_t);
template double sum_squares<double>(const double*, std::size_t);
template std::ptrdiff_t first_non_finite<float>(const float*, std::size_t);
template std::ptrdiff_t first_non_finite<double>(const double*, std::size_t);
template void scale_inplace<float>(float*, std::size_t, float);
template void scale_inplace<double>(double*, std::size_t, double);
template void add_inplace<float>(float*, const float*, std::size_t);
template void add_inplace<double>(double*, const double*, std::size_t);

}  // namespace kd::kern
