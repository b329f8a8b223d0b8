// Activation quantization to int8 (dynamic per-token and static) and int4 nibble packing.
// The AVX2 loop computes exactly common::quant_code: round(x · inv) in the default
// rounding mode (nearbyint = half to even), + zero point in float, clamp.
#include <cfloat>
#include <cmath>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "kernels/common/quant_math.h"
#include "kernels/int_gemm.h"

namespace kd::kern {

namespace {

std::int8_t code_of(float x, float inv, int zero, int lo, int hi) {
  const std::int64_t q = common::quant_code(x, inv, zero);
  return static_cast<std::int8_t>(q < lo ? lo : (q > hi ? hi : q));
}

// One row: q[i] = clamp(zero + nearbyint(x[i] · inv), lo, hi).
void quantize_row(std::int8_t* q, const float* x, int k, float inv, int zero, int lo, int hi) {
  int i = 0;
#if defined(__AVX2__)
  // ---- AVX2 hot loop: 32 elements per step, narrowed int32 -> int8 with saturating packs
  // (the values are already clamped, so the packs never saturate).
  const __m256 vinv = _mm256_set1_ps(inv), vz = _mm256_set1_ps(float(zero));
  const __m256 vlo = _mm256_set1_ps(float(lo)), vhi = _mm256_set1_ps(float(hi));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);  // undo the packs' lane interleave
  auto codes8 = [&](const float* p) {
    __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(p), vinv),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(vz, r), vlo), vhi);
    return _mm256_cvtps_epi32(r);
  };
  for (; i + 32 <= k; i += 32) {
    const __m256i ab = _mm256_packs_epi32(codes8(x + i), codes8(x + i + 8));
    const __m256i cd = _mm256_packs_epi32(codes8(x + i + 16), codes8(x + i + 24));
    const __m256i abcd = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), order);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), abcd);
  }
#endif
  for (; i < k; ++i) q[i] = code_of(x[i], inv, zero, lo, hi);
}

float row_absmax(const float* x, int k) {
  float a = 0.0f;
#pragma omp simd reduction(max : a)
  for (int i = 0; i < k; ++i) a = std::fabs(x[i]) > a ? std::fabs(x[i]) : a;
  return a;
}

}  // namespace

void quantize_rows_int8(std::int8_t* q, float* scale, const float* x, int m, int k) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < m; ++r) {
    const float* xr = x + std::size_t(r) * k;
    const float amax = row_absmax(xr, k);
    float s = amax / 127.0f;
    if (amax == 0.0f) s = 1.0f;          // all zeros: any scale gives code 0
    else if (s < FLT_MIN) s = FLT_MIN;   // keep 1/s finite
    scale[r] = s;
    quantize_row(q + std::size_t(r) * k, xr, k, 1.0f / s, 0, -127, 127);
  }
}

void quantize_rows_int8_static(std::int8_t* q, const float* x, int m, int k, float scale,
                               int zero_point) {
  const float inv = 1.0f / scale;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < m; ++r)
    quantize_row(q + std::size_t(r) * k, x + std::size_t(r) * k, k, inv, zero_point, -128, 127);
}

void pack_int4(std::uint8_t* packed, const std::int8_t* codes, std::size_t n) {
  for (std::size_t j = 0; j < n / 2; ++j)
    packed[j] = std::uint8_t((codes[2 * j] & 0xF) | ((codes[2 * j + 1] & 0xF) << 4));
}

void unpack_int4(std::int8_t* codes, const std::uint8_t* packed, std::size_t n) {
  for (std::size_t j = 0; j < n / 2; ++j) {
    // shift the nibble to the top of an int8, then arithmetic-shift back: sign extension
    codes[2 * j] = std::int8_t(std::int8_t(packed[j] << 4) >> 4);
    codes[2 * j + 1] = std::int8_t(std::int8_t(packed[j]) >> 4);
  }
}

int weight_code(const QuantWeight& w, int row, int col) {
  const std::size_t i = std::size_t(row) * w.k + col;
  if (w.bits == 8) return w.q8[i];
  const std::uint8_t byte = w.q4[i / 2];
  return (i % 2 == 0) ? std::int8_t(std::uint8_t(byte << 4)) >> 4 : std::int8_t(byte) >> 4;
}

}  // namespace kd::kern
