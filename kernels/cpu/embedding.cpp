#include <omp.h>

#include <algorithm>
#include <cstring>

#include "kernels/kernels.h"

namespace kd::kern {

template <class T>
void embedding_forward(T* x, const T* emb, const std::int32_t* tokens, int m, int d) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < m; ++r) {
    std::memcpy(x + std::size_t(r) * d, emb + std::size_t(tokens[r]) * d, sizeof(T) * d);
  }
}

template <class T>
void embedding_backward(T* demb, const T* dx, const std::int32_t* tokens, int m, int d) {
  // Rows repeat (the same token many times), so split by columns: each thread adds
  // its column slice of every row, in row order, with no races and a fixed order.
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int per = (d + nt - 1) / nt;
    const int c0 = std::min(d, id * per), c1 = std::min(d, c0 + per);
    for (int r = 0; r < m; ++r) {
      T* dst = demb + std::size_t(tokens[r]) * d;
      const T* src = dx + std::size_t(r) * d;
#pragma omp simd
      for (int c = c0; c < c1; ++c) dst[c] += src[c];
    }
  }
}

template void embedding_forward<float>(float*, const float*, const std::int32_t*, int, int);
template void embedding_forward<double>(double*, const double*, const std::int32_t*, int, int);
template void embedding_backward<float>(float*, const float*, const std::int32_t*, int, int);
template void embedding_backward<double>(double*, const double*, const std::int32_t*, int, int);

}  // namespace kd::kern
