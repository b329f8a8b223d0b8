// Element math shared by every backend: plain inline functions, callable from host and
// (later) device code, unit-tested on the CPU so the CUDA kernels reuse tested math.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#if defined(__CUDACC__)
#define KD_HD __host__ __device__
#else
#define KD_HD
#endif

namespace kd::common {

// exp for float written with plain arithmetic so the compiler vectorises it inside
// `omp simd` loops (libm's expf is a call per element). Cody-Waite reduction to
// |r| <= ln2/2 and a degree-6 Taylor polynomial: relative error <= 2 ulp, checked
// against std::exp in tests/test_scalar_math.cpp. Under/overflow saturate to 0/inf;
// NaN propagates (the NaN policy depends on it).
KD_HD inline float exp_fast(float x) {
  constexpr float kHi = 88.0f;
  constexpr float kLo = -87.33654475f;  // ln(FLT_MIN): below it the result flushes to 0
  float xc = x > kHi ? kHi : x;
  xc = xc < kLo ? kLo : xc;
  const float k = std::floor(xc * 1.44269504088896341f + 0.5f);
  const float r = (xc - k * 0.693145751953125f) - k * 1.42860682030941723212e-6f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(k) + 127) << 23;
  float res = p * std::bit_cast<float>(bits);
  res = x < kLo ? 0.0f : res;
  res = x > kHi ? std::numeric_limits<float>::infinity() : res;
  return x != x ? x : res;
}

// The exp used by kernels: the fast one for float, libm's for double (the double
// instantiation is the finite-difference reference and wants full precision).
template <class T>
KD_HD inline T exp_t(T x) {
  if constexpr (std::is_same_v<T, float>) {
    return exp_fast(x);
  } else {
    return std::exp(x);
  }
}

template <class T>
KD_HD inline T sigmoid(T x) {
  return T(1) / (T(1) + exp_t<T>(-x));
}

template <class T>
KD_HD inline T silu(T x) {
  return x * sigmoid(x);
}

// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x)
template <class T>
KD_HD inline T silu_grad(T x) {
  const T s = sigmoid(x);
  return s * (T(1) + x * (T(1) - s));
}

// log(exp(a) + exp(b)) without overflow; infinite inputs handled.
template <class T>
KD_HD inline T log_add_exp(T a, T b) {
  const T m = a > b ? a : b;
  if (m == -std::numeric_limits<T>::infinity() || m == std::numeric_limits<T>::infinity()) return m;
  const T d = a > b ? b - a : a - b;
  return m + std::log1p(std::exp(d));
}

}  // namespace kd::common
