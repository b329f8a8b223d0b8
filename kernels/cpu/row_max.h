// The largest of a row of logits (the shift before exponentials) and the row's
// log-sum-exp (CE's normaliser), vectorised; shared by the loss kernels.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/common/scalar_math.h"

namespace kd::kern {

template <class T>
T row_max(const T* x, int v) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (int i = 0; i < v; ++i) m = std::max(m, x[i]);
  return m;
}

template <class T>
struct RowLse {
  T max;  // the row's largest logit
  T lse;  // max + log Σ exp(x − max)
};

template <class T>
RowLse<T> row_lse(const T* x, int v) {
  const T m = row_max(x, v);
  T z = 0;
#pragma omp simd reduction(+ : z)
  for (int i = 0; i < v; ++i) z += common::exp_t<T>(x[i] - m);
  return {m, m + std::log(z)};
}

}  // namespace kd::kern
