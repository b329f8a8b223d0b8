// y (+)= x · wᵀ with w in bfloat16: tiles of output rows of w converted to float32, then
// one sgemm per tile writing its columns of y. 256 rows per tile: the scratch stays within
// 4 MB for k up to 4096 and each GEMM is wide enough to run near sgemm speed.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "kernels/common/bf16.h"
#include "kernels/kernels.h"

namespace kd::kern {

void linear_forward_bf16(float* y, const float* x, const std::uint16_t* w, int m, int n, int k, bool accumulate) {
  constexpr int kTile = 256;
  // the calling thread's scratch, kept between calls; the workers below fill it through t
  thread_local std::vector<float> tile;
  tile.resize(std::size_t(kTile) * std::size_t(k));
  float* t = tile.data();
  for (int n0 = 0; n0 < n; n0 += kTile) {
    const int nb = std::min(kTile, n - n0);
    const std::uint16_t* src = w + std::size_t(n0) * k;
    const std::size_t count = std::size_t(nb) * k;
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < count; ++i) t[i] = common::from_bf16(src[i]);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, nb, k, 1.0f, x, k, t, k,
                accumulate ? 1.0f : 0.0f, y + n0, n);
  }
}

}  // namespace kd::kern
