// The largest of a row of logits (the shift before exponentials), vectorised.
#pragma once

#include <algorithm>
#include <limits>

namespace kd::kern {

template <class T>
T row_max(const T* x, int v) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (int i = 0; i < v; ++i) m = std::max(m, x[i]);
  return m;
}

}  // namespace kd::kern
