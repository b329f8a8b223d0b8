// Weight-only quantized linear (W4A16 / W8A16): fp32 activations, int4/int8 weights.
// Each task dequantizes a tile of W's rows to fp32 in a per-thread buffer and hands it to
// single-threaded sgemm; the weight never exists in fp32 as a whole.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "kernels/int_gemm.h"

namespace kd::kern {

namespace {

constexpr int kTileChannels = 128;  // rows of W dequantized at a time (128 KiB at K = 256)
constexpr int kTaskRows = 1024;     // rows of x per task: N = 128 still gives 2 tasks at M = 2048

// out (rows, K) = (q - z) · s, exactly as fake-quant dequantizes.
void dequantize_rows(float* out, const QuantWeight& w, int row0, int rows) {
  const int groups = w.k / w.group;
  for (int i = 0; i < rows; ++i) {
    const int row = row0 + i;
    float* o = out + std::size_t(i) * w.k;
    for (int g = 0; g < groups; ++g) {
      const std::size_t sg = std::size_t(row) * groups + g;
      const float s = w.scale[sg];
      const int z = w.zero ? w.zero[sg] : 0;
      const int c0 = g * w.group;
      if (w.bits == 8) {
        const std::int8_t* q = w.q8 + std::size_t(row) * w.k + c0;
#pragma omp simd
        for (int c = 0; c < w.group; ++c) o[c0 + c] = float(q[c] - z) * s;
      } else {
        const std::uint8_t* q = w.q4 + (std::size_t(row) * w.k + c0) / 2;
#pragma omp simd
        for (int j = 0; j < w.group / 2; ++j) {  // low nibble first, sign-extended
          o[c0 + 2 * j] = float((std::int8_t(std::uint8_t(q[j] << 4)) >> 4) - z) * s;
          o[c0 + 2 * j + 1] = float((std::int8_t(q[j]) >> 4) - z) * s;
        }
      }
    }
  }
}

}  // namespace

void linear_w4a16(float* y, const float* x, const QuantWeight& w, int m, bool accumulate) {
  check_weight(w);
  const int tiles = (w.n + kTileChannels - 1) / kTileChannels;
  const int row_tasks = (m + kTaskRows - 1) / kTaskRows;
#pragma omp parallel
  {
    std::vector<float> wt(std::size_t(kTileChannels) * w.k);
    int held = -1;  // the tile `wt` holds: static chunks are tile-major, so each is dequantized once per thread
#pragma omp for schedule(static)
    for (int task = 0; task < tiles * row_tasks; ++task) {
      const int tile = task / row_tasks, rt = task % row_tasks;
      const int n0 = tile * kTileChannels, nt = std::min(kTileChannels, w.n - n0);
      const int r0 = rt * kTaskRows, rows = std::min(kTaskRows, m - r0);
      if (held != tile) {
        dequantize_rows(wt.data(), w, n0, nt);
        held = tile;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nt, w.k, 1.0f, x + std::size_t(r0) * w.k, w.k,
                  wt.data(), w.k, accumulate ? 1.0f : 0.0f, y + std::size_t(r0) * w.n + n0, w.n);
    }
  }
}

}  // namespace kd::kern
