// linear_int8's micro-tiles: the plain C++ reference, and the AVX2 hot loops that the
// default build (-mavx2) runs. Both compute the same exact int32 sum per (row, channel,
// group) and then do the same float arithmetic into y, so they agree bit for bit.
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

// y (+)= float(acc) · (bscale · xscale): the one float step per group.
float rescale(float y, std::int32_t acc, const IntTile& t, int g, int r, int c) {
  const float sc = t.bscale[g * kPanel + c] * t.xscale[r * t.xscale_stride];
  return (t.accumulate || g > 0) ? std::fma(float(acc), sc, y) : float(acc) * sc;
}

}  // namespace

void int_tile_pairs_reference(const IntTile& t) {
  for (int r = 0; r < t.rows; ++r)
    for (int c = 0; c < t.cols; ++c)
      for (int g = 0; g < t.groups; ++g) {
        std::int32_t acc = 0;
        for (int k = g * t.group_k; k < (g + 1) * t.group_k; ++k)
          acc += std::int32_t(t.a16[std::size_t(r) * t.lda + k]) * t.b16[(std::size_t(k / 2) * kPanel + c) * 2 + k % 2];
        float& y = t.y[std::size_t(r) * t.ldy + c];
        y = rescale(y, acc, t, g, r, c);
      }
}

void int_tile_quads_reference(const IntTile& t) {
  for (int r = 0; r < t.rows; ++r)
    for (int c = 0; c < t.cols; ++c)
      for (int g = 0; g < t.groups; ++g) {
        std::int32_t acc = 0;
        for (int k = g * t.group_k; k < (g + 1) * t.group_k; ++k)
          acc += std::int32_t(t.a8[std::size_t(r) * t.lda + k]) * t.b8[(std::size_t(k / 4) * kPanel + c) * 4 + k % 4];
        acc -= t.act_offset * t.bsum[g * kPanel + c];  // the activations were shifted by +128 - zx
        float& y = t.y[std::size_t(r) * t.ldy + c];
        y = rescale(y, acc, t, g, r, c);
      }
}

namespace {

#if defined(__AVX2__)
// ================================================================ AVX2 hot loops
// Named accumulators, not arrays, and the dot loops kept out of line: GCC 12 spills
// accumulators otherwise (an unrolled __m256i[6][2], or the caller's values kept live).

__m256i broadcast4(const void* p) {  // 4 bytes (2 int16 or 4 uint8) to every int32 lane
  std::int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm256_set1_epi32(v);
}

// int16_pairs, one K pair per step: the activation pair (a[2j], a[2j+1]) is broadcast and
// vpmaddwd multiplies it with 8 channels' weight pairs, adding each pair of int16 products
// exactly into an int32 lane (|sum| ≤ 2·255² < 2³¹).
// acc[r][h] = Σ_{j < pairs} a_r[2j..2j+1] · b[j][8h..8h+7][0..1]
[[gnu::noinline]] void dot_pairs_6x16(__m256i acc[6][2], const std::int16_t* const a[6], const std::int16_t* b, int pairs) {
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256i c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int j = 0; j < pairs; ++j, b += 2 * kPanel) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + kPanel));
    __m256i x = broadcast4(a[0] + 2 * j);
    c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(x, b0));
    c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(x, b1));
    x = broadcast4(a[1] + 2 * j);
    c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(x, b0));
    c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(x, b1));
    x = broadcast4(a[2] + 2 * j);
    c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(x, b0));
    c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(x, b1));
    x = broadcast4(a[3] + 2 * j);
    c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(x, b0));
    c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(x, b1));
    x = broadcast4(a[4] + 2 * j);
    c40 = _mm256_add_epi32(c40, _mm256_madd_epi16(x, b0));
    c41 = _mm256_add_epi32(c41, _mm256_madd_epi16(x, b1));
    x = broadcast4(a[5] + 2 * j);
    c50 = _mm256_add_epi32(c50, _mm256_madd_epi16(x, b0));
    c51 = _mm256_add_epi32(c51, _mm256_madd_epi16(x, b1));
  }
  acc[0][0] = c00, acc[0][1] = c01, acc[1][0] = c10, acc[1][1] = c11, acc[2][0] = c20, acc[2][1] = c21;
  acc[3][0] = c30, acc[3][1] = c31, acc[4][0] = c40, acc[4][1] = c41, acc[5][0] = c50, acc[5][1] = c51;
}

// int8_quads, one K octet (two quads) per step for one row: vpmaddubsw multiplies the
// unsigned activation quad with 8 channels' int8 weight quads and sums pairs into int16
// (|·| ≤ 7650); the two quads' sums are added in int16 (≤ 15300, exact), then vpmaddwd
// with ones widens and sums each channel's two int16 lanes into its int32 lane.
// b points at the octet: [quad 0: channels 0-7 | 8-15][quad 1: channels 0-7 | 8-15].
inline void quads_row(__m256i& c0, __m256i& c1, const std::uint8_t* a, const __m256i* b, __m256i ones) {
  const __m256i x0 = broadcast4(a), x1 = broadcast4(a + 4);
  const __m256i s0 = _mm256_add_epi16(_mm256_maddubs_epi16(x0, _mm256_loadu_si256(b)),
                                      _mm256_maddubs_epi16(x1, _mm256_loadu_si256(b + 2)));
  const __m256i s1 = _mm256_add_epi16(_mm256_maddubs_epi16(x0, _mm256_loadu_si256(b + 1)),
                                      _mm256_maddubs_epi16(x1, _mm256_loadu_si256(b + 3)));
  c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(s0, ones));
  c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(s1, ones));
}

// acc[r][h] = Σ_{k < 8·octs} a_r[k] · b[k/4][8h..8h+7][k%4]  (a unsigned, b signed)
[[gnu::noinline]] void dot_quads_4x16(__m256i acc[4][2], const std::uint8_t* const a[4], const std::int8_t* b, int octs) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00;
  __m256i c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (int j = 0; j < octs; ++j, b += 8 * kPanel) {
    const __m256i* bj = reinterpret_cast<const __m256i*>(b);
    quads_row(c00, c01, a[0] + 8 * j, bj, ones);
    quads_row(c10, c11, a[1] + 8 * j, bj, ones);
    quads_row(c20, c21, a[2] + 8 * j, bj, ones);
    quads_row(c30, c31, a[3] + 8 * j, bj, ones);
  }
  acc[0][0] = c00, acc[0][1] = c01, acc[1][0] = c10, acc[1][1] = c11;
  acc[2][0] = c20, acc[2][1] = c21, acc[3][0] = c30, acc[3][1] = c31;
}

// y (+)= float(acc) · (bscale · xscale) for group g, the tile's valid rows and columns.
void rescale_group(const IntTile& t, int g, const __m256i (*acc)[2]) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask[2] = {_mm256_cmpgt_epi32(_mm256_set1_epi32(t.cols), lane),
                           _mm256_cmpgt_epi32(_mm256_set1_epi32(t.cols - 8), lane)};
  const bool full = t.cols == kPanel, add = t.accumulate || g > 0;
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
        const __m256 out = add ? _mm256_fmadd_ps(v, sc, _mm256_maskload_ps(y + 8 * h, mask[h])) : _mm256_mul_ps(v, sc);
        _mm256_maskstore_ps(y + 8 * h, mask[h], out);
      }
    }
  }
}

void int_tile_pairs_avx2(const IntTile& t) {
  // A short tile repeats its last row in the missing ones and drops their results.
  const std::int16_t* a[6];
  for (int r = 0; r < 6; ++r) a[r] = t.a16 + std::size_t(r < t.rows ? r : t.rows - 1) * t.lda;
  for (int g = 0; g < t.groups; ++g) {
    __m256i acc[6][2];
    dot_pairs_6x16(acc, a, t.b16 + std::size_t(g) * t.group_k * kPanel, t.group_k / 2);
    rescale_group(t, g, acc);
    for (auto& ar : a) ar += t.group_k;
  }
}

void int_tile_quads_avx2(const IntTile& t) {
  const std::uint8_t* a[4];
  for (int r = 0; r < 4; ++r) a[r] = t.a8 + std::size_t(r < t.rows ? r : t.rows - 1) * t.lda;
  const __m256i offset = _mm256_set1_epi32(t.act_offset);
  for (int g = 0; g < t.groups; ++g) {
    __m256i acc[4][2];
    dot_quads_4x16(acc, a, t.b8 + std::size_t(g) * t.group_k * kPanel, t.group_k / 8);
    for (int h = 0; h < 2; ++h) {  // take the +128 - zx activation shift back out
      const __m256i sum = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.bsum + g * kPanel + 8 * h));
      const __m256i shift = _mm256_mullo_epi32(offset, sum);
      for (auto& ar : acc) ar[h] = _mm256_sub_epi32(ar[h], shift);
    }
    rescale_group(t, g, acc);
    for (auto& ar : a) ar += t.group_k;
  }
}
#endif

}  // namespace

void int_tile_pairs(const IntTile& t) {
#if defined(__AVX2__)
  static_assert(kPairsTileRows == 6, "dot_pairs_6x16 is written out for 6 rows");
  int_tile_pairs_avx2(t);
#else
  int_tile_pairs_reference(t);
#endif
}

void int_tile_quads(const IntTile& t) {
#if defined(__AVX2__)
  static_assert(kQuadsTileRows == 4, "dot_quads_4x16 is written out for 4 rows");
  int_tile_quads_avx2(t);
#else
  int_tile_quads_reference(t);
#endif
}

}  // namespace kd::kern::detail
