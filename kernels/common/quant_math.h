// Quantization element math shared by every backend (FakeQuant, PTQ, integer inference):
// integer quantize-dequantize with PyTorch's exact rounding, and the OCP FP8 formats.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/common/scalar_math.h"

namespace kd::common {

// ---------------------------------------------------------------- integer grids
// PyTorch's fake_quantize_per_{tensor,channel}_affine, bit for bit: the quotient is
// x · inv_scale with inv_scale = 1/scale computed in float (x / scale rounds differently
// on near-ties), rounded half to even (nearbyint), shifted by the zero point, clamped.
struct IntGrid {
  int qmin, qmax;
};
KD_HD inline IntGrid int_grid(int bits, bool is_signed) {
  return is_signed ? IntGrid{-(1 << (bits - 1)), (1 << (bits - 1)) - 1} : IntGrid{0, (1 << bits) - 1};
}

// The unclamped integer code; callers clamp and use `in_range` for the STE mask.
KD_HD inline std::int64_t quant_code(float x, float inv_scale, std::int64_t zero_point) {
  return static_cast<std::int64_t>(float(zero_point) + std::nearbyint(x * inv_scale));
}

KD_HD inline float fake_quant(float x, float scale, float inv_scale, std::int64_t zero_point, IntGrid g,
                              bool* in_range = nullptr) {
  const std::int64_t q = quant_code(x, inv_scale, zero_point);
  if (in_range) *in_range = q >= g.qmin && q <= g.qmax;
  const std::int64_t c = q < g.qmin ? g.qmin : (q > g.qmax ? g.qmax : q);
  return float(c - zero_point) * scale;
}

// Scale and zero point that map the clipping range [lo, hi] onto a grid, as PyTorch's
// observers compute them (_calculate_qparams): the range is widened to include 0 so that
// 0 is exact; symmetric grids centre it (zero point 0 on a signed grid, the middle code
// on an unsigned one). The scale never goes below `eps` (a constant tensor still gets a
// usable grid).
struct Affine {
  float scale;
  std::int64_t zero_point;
};
KD_HD inline Affine affine_params(float lo, float hi, IntGrid g, bool symmetric,
                                  float eps = 1.1920928955078125e-07f) {
  const float min_neg = lo < 0.0f ? lo : 0.0f;
  const float max_pos = hi > 0.0f ? hi : 0.0f;
  if (symmetric) {
    const float a = -min_neg > max_pos ? -min_neg : max_pos;
    float s = a / (float(g.qmax - g.qmin) / 2.0f);
    s = s > eps ? s : eps;
    const std::int64_t z = g.qmin < 0 ? 0 : (g.qmin + g.qmax + 1) / 2;
    return {s, z};
  }
  float s = (max_pos - min_neg) / float(g.qmax - g.qmin);
  s = s > eps ? s : eps;
  std::int64_t z = g.qmin - static_cast<std::int64_t>(std::nearbyint(min_neg / s));
  z = z < g.qmin ? g.qmin : (z > g.qmax ? g.qmax : z);
  return {s, z};
}

// Straight-through estimator: the gradient passes inside the clipping range, 0 outside.
// A product, as PyTorch's (dy · mask), so a masked negative gradient is −0 there too.
KD_HD inline float ste_grad(float dy, bool in_range) { return dy * float(in_range); }

// LSQ (learned step size, Esser et al. 2020) gradients of one element, as PyTorch's
// _fake_quantize_learnable_per_{tensor,channel}_affine computes them. The caller sums
// dscale and dzero over the elements a scale covers; grad_factor is LSQ's gradient scale
// (1/sqrt(numel · qmax) in the paper).
struct LsqGrad {
  float dx, dscale, dzero;
};
KD_HD inline LsqGrad lsq_grad(float x, float dy, float scale, float inv_scale, std::int64_t zero_point, IntGrid g,
                              float grad_factor) {
  const float xs = x * inv_scale;
  const std::int64_t q = static_cast<std::int64_t>(float(zero_point) + std::nearbyint(xs));
  const float z = float(zero_point);
  if (q < g.qmin) return {dy * 0.0f, dy * grad_factor * (float(g.qmin) - z), dy * grad_factor * -scale};
  if (q > g.qmax) return {dy * 0.0f, dy * grad_factor * (float(g.qmax) - z), dy * grad_factor * -scale};
  return {dy, dy * grad_factor * ((float(q) - z) - xs), 0.0f};
}

// ---------------------------------------------------------------- FP8 (OCP 8-bit floats)
// E4M3 ("fn"): bias 7, 3 mantissa bits, no infinities, max ±448, NaN = S.1111.111.
// E5M2: bias 15, 2 mantissa bits, IEEE-like: ±Inf = S.11111.00, NaN = S.11111.{01,10,11}.
// Encoding rounds to nearest, ties to even, and SATURATES: values past ±max and ±Inf
// encode to ±max (the usual choice for training and inference casts; OCP leaves it to
// the implementation). NaN encodes to the canonical NaN S.1111.111 / S.11111.11 with its sign.
enum class Fp8Format { e4m3, e5m2 };

struct Fp8Spec {
  int mbits, bias;
  std::uint8_t max_code;  // largest finite magnitude code
  std::uint8_t nan_code;  // canonical NaN magnitude code
};
KD_HD inline Fp8Spec fp8_spec(Fp8Format f) {
  return f == Fp8Format::e4m3 ? Fp8Spec{3, 7, 0x7E, 0x7F} : Fp8Spec{2, 15, 0x7B, 0x7F};
}

KD_HD inline float fp8_decode(std::uint8_t code, Fp8Format f) {
  const Fp8Spec s = fp8_spec(f);
  const bool neg = (code & 0x80) != 0;
  const int mag = code & 0x7F;
  const int e = mag >> s.mbits, m = mag & ((1 << s.mbits) - 1);
  float v;
  if (f == Fp8Format::e4m3 && mag == 0x7F) {
    v = std::numeric_limits<float>::quiet_NaN();
  } else if (f == Fp8Format::e5m2 && e == 31) {
    v = m == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  } else if (e == 0) {
    v = std::ldexp(float(m), 1 - s.bias - s.mbits);  // subnormal: m · 2^(1-bias-mbits)
  } else {
    v = std::ldexp(float((1 << s.mbits) + m), e - s.bias - s.mbits);
  }
  return neg ? -v : v;
}

KD_HD inline std::uint8_t fp8_encode(float x, Fp8Format f) {
  const Fp8Spec s = fp8_spec(f);
  const std::uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  if (std::isnan(x)) return std::uint8_t(sign | s.nan_code);
  const float a = std::fabs(x);
  const float max = fp8_decode(s.max_code, f);
  if (a >= max) return std::uint8_t(sign | s.max_code);  // saturate (Inf included)
  if (a == 0.0f) return sign;
  const int emin = 1 - s.bias;  // exponent of the smallest normal
  int e;
  std::frexp(a, &e);
  e -= 1;  // a = 1.f · 2^e
  if (e < emin) e = emin;  // subnormals share the smallest normal's quantum
  // q counts quanta of 2^(e - mbits): exact scaling by a power of two, then ties-to-even
  const float q = std::nearbyint(std::ldexp(a, s.mbits - e));
  // q in [0, 2^(mbits+1)]; q == 2^(mbits+1) carries into the next binade. The code is
  // ((e - emin) << mbits) + q for both normals and subnormals.
  int code = ((e - emin) << s.mbits) + int(q);
  if (code > s.max_code) code = s.max_code;  // rounding past max saturates
  return std::uint8_t(sign | code);
}

KD_HD inline float fp8_round(float x, Fp8Format f) { return fp8_decode(fp8_encode(x, f), f); }

// The straight-through estimator's clipping bound on x/scale for an FP8 grid: below it an
// element rounds to a representable magnitude as it would without saturation (at most the
// largest, max), above it saturation clips it. Half a step above max, not max itself: the
// element that sets a max-calibrated scale lands on max only up to float rounding, and it
// must stay inside (as on an integer grid, whose test is on the rounded code).
KD_HD inline float fp8_clip_bound(Fp8Format f) {
  const Fp8Spec s = fp8_spec(f);
  const float max = fp8_decode(s.max_code, f);
  const float below = fp8_decode(std::uint8_t(s.max_code - 1), f);  // the same binade: one step down
  return max + 0.5f * (max - below);
}

}  // namespace kd::common
