// linear_int8's micro-tile: the plain C++ reference, and the AVX2 hot loop that the
// default build (-mavx2) runs. Both do the same arithmetic in the same order: an exact
// int32 sum per (row, channel, group), then one float fma per group into y.
#include "kernels/cpu/int_gemm_tile.h"

#include <cmath>
#include <cstddef>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace kd::kern::detail {

namespace {

constexpr int kPanel = 16;

[[maybe_unused]] void int_tile_reference(const IntTile& t) {
  for (int r = 0; r < t.rows; ++r) {
    const std::int16_t* a = t.a + std::size_t(r) * t.lda;
    const float sx = t.xscale[r * t.xscale_stride];
    for (int c = 0; c < t.cols; ++c) {
      float& y = t.y[std::size_t(r) * t.ldy + c];
      for (int g = 0; g < t.groups; ++g) {
        std::int32_t acc = 0;
        for (int j = g * t.pairs_per_group; j < (g + 1) * t.pairs_per_group; ++j) {
          const std::int16_t* b = t.b + (std::size_t(j) * kPanel + c) * 2;
          acc += std::int32_t(a[2 * j]) * b[0] + std::int32_t(a[2 * j + 1]) * b[1];
        }
        const float sc = t.bscale[g * kPanel + c] * sx;
        y = (t.accumulate || g > 0) ? std::fma(float(acc), sc, y) : float(acc) * sc;
      }
    }
  }
}

#if defined(__AVX2__)
// ---- AVX2 hot loop. One K pair per step: the activation pair (a[2j], a[2j+1]) is
// broadcast as one int32 and vpmaddwd multiplies it with 8 channels' weight pairs, adding
// each pair of int16 products exactly into an int32 lane (|sum| ≤ 2·255² < 2³¹).
// Named accumulators, not an array: GCC 12 spills an unrolled __m256i[6][2] in this loop.
__m256i broadcast_pair(const std::int16_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm256_set1_epi32(v);
}

// acc[r][h] = Σ_{j < pairs} a_r[2j..2j+1] · b[j][8h..8h+7][0..1], exact int32.
void dot_6x16(__m256i acc[6][2], const std::int16_t* const a[6], const std::int16_t* b, int pairs) {
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256i c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int j = 0; j < pairs; ++j, b += 2 * kPanel) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + kPanel));
    __m256i x = broadcast_pair(a[0] + 2 * j);
    c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(x, b0));
    c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(x, b1));
    x = broadcast_pair(a[1] + 2 * j);
    c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(x, b0));
    c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(x, b1));
    x = broadcast_pair(a[2] + 2 * j);
    c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(x, b0));
    c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(x, b1));
    x = broadcast_pair(a[3] + 2 * j);
    c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(x, b0));
    c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(x, b1));
    x = broadcast_pair(a[4] + 2 * j);
    c40 = _mm256_add_epi32(c40, _mm256_madd_epi16(x, b0));
    c41 = _mm256_add_epi32(c41, _mm256_madd_epi16(x, b1));
    x = broadcast_pair(a[5] + 2 * j);
    c50 = _mm256_add_epi32(c50, _mm256_madd_epi16(x, b0));
    c51 = _mm256_add_epi32(c51, _mm256_madd_epi16(x, b1));
  }
  acc[0][0] = c00, acc[0][1] = c01, acc[1][0] = c10, acc[1][1] = c11, acc[2][0] = c20, acc[2][1] = c21;
  acc[3][0] = c30, acc[3][1] = c31, acc[4][0] = c40, acc[4][1] = c41, acc[5][0] = c50, acc[5][1] = c51;
}

void int_tile_avx2(const IntTile& t) {
  static_assert(kTileRows == 6, "dot_6x16 is written out for 6 rows");
  // A short tile repeats its last row in the missing ones and drops their results.
  const std::int16_t* a[6];
  for (int r = 0; r < 6; ++r) a[r] = t.a + std::size_t(r < t.rows ? r : t.rows - 1) * t.lda;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask[2] = {_mm256_cmpgt_epi32(_mm256_set1_epi32(t.cols), lane),
                           _mm256_cmpgt_epi32(_mm256_set1_epi32(t.cols - 8), lane)};
  const bool full = t.cols == kPanel;
  const std::size_t group_pairs = std::size_t(t.pairs_per_group);
  for (int g = 0; g < t.groups; ++g) {
    __m256i acc[6][2];
    const std::int16_t* ag[6];
    for (int r = 0; r < 6; ++r) ag[r] = a[r] + g * group_pairs * 2;
    dot_6x16(acc, ag, t.b + g * group_pairs * 2 * kPanel, t.pairs_per_group);
    // rescale this group's exact sums and add them into y
    const bool add = t.accumulate || g > 0;
    for (int r = 0; r < t.rows; ++r) {
      const __m256 sx = _mm256_set1_ps(t.xscale[r * t.xscale_stride]);
      float* y = t.y + std::size_t(r) * t.ldy;
      for (int h = 0; h < 2; ++h) {
        const __m256 sc = _mm256_mul_ps(_mm256_loadu_ps(t.bscale + g * kPanel + 8 * h), sx);
        const __m256 v = _mm256_cvtepi32_ps(acc[r][h]);
        if (full) {
          const __m256 out = add ? _mm256_fmadd_ps(v, sc, _mm256_loadu_ps(y + 8 * h)) : _mm256_mul_ps(v, sc);
          _mm256_storeu_ps(y + 8 * h, out);
        } else {
          const __m256 out = add ? _mm256_fmadd_ps(v, sc, _mm256_maskload_ps(y + 8 * h, mask[h]))
                                 : _mm256_mul_ps(v, sc);
          _mm256_maskstore_ps(y + 8 * h, mask[h], out);
        }
      }
    }
  }
}
#endif

}  // namespace

void int_tile(const IntTile& t) {
#if defined(__AVX2__)
  int_tile_avx2(t);
#else
  int_tile_reference(t);
#endif
}

}  // namespace kd::kern::detail
