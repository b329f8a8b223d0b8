// Hidden-state matching between a student layer and the projected teacher layer:
// MSE (TinyBERT) or cosine distance (DistilBERT's cosine embedding loss).
#include <algorithm>
#include <cmath>

#include "kernels/cpu/ordered_sum.h"
#include "kernels/kernels.h"

namespace kd::kern {

namespace {

template <class T>
double mse_rows(T* dhs, T* dtarget, const T* hs, const T* target, int d, int r0, int r1,
                T gscale) {
  double sum = 0;
  for (int r = r0; r < r1; ++r) {
    const T* a = hs + std::size_t(r) * d;
    const T* b = target + std::size_t(r) * d;
    T* da = dhs + std::size_t(r) * d;
    T* db = dtarget + std::size_t(r) * d;
    T row = 0;
#pragma omp simd reduction(+ : row)
    for (int c = 0; c < d; ++c) {
      const T diff = a[c] - b[c];
      row += diff * diff;
      da[c] += gscale * diff;
      db[c] = -gscale * diff;
    }
    sum += double(row);
  }
  return sum;
}

template <class T>
double cosine_rows(T* dhs, T* dtarget, const T* hs, const T* target, int d, int r0, int r1,
                   T gscale) {
  constexpr T kEps = T(1e-8);  // as torch.cosine_similarity: |a||b| clamped below
  double sum = 0;
  for (int r = r0; r < r1; ++r) {
    const T* a = hs + std::size_t(r) * d;
    const T* b = target + std::size_t(r) * d;
    T* da = dhs + std::size_t(r) * d;
    T* db = dtarget + std::size_t(r) * d;
    T ab = 0, aa = 0, bb = 0;
#pragma omp simd reduction(+ : ab, aa, bb)
    for (int c = 0; c < d; ++c) {
      ab += a[c] * b[c];
      aa += a[c] * a[c];
      bb += b[c] * b[c];
    }
    const T den = std::sqrt(std::max(aa * bb, kEps * kEps));
    const T cs = ab / den;
    sum += 1.0 - double(cs);
    // d(1 − cos)/da = −(b/den − cos·a/|a|²), symmetric for b
    const T ia = aa > T(0) ? T(1) / aa : T(0), ib = bb > T(0) ? T(1) / bb : T(0);
#pragma omp simd
    for (int c = 0; c < d; ++c) {
      da[c] -= gscale * (b[c] / den - cs * a[c] * ia);
      db[c] = -gscale * (a[c] / den - cs * b[c] * ib);
    }
  }
  return sum;
}

}  // namespace

template <class T>
double feature_loss(T* dhs, T* dtarget, const T* hs, const T* target, int m, int d,
                    FeatureLoss kind, double scale) {
  constexpr std::size_t kRows = 64;
  if (kind == FeatureLoss::mse) {
    const double n = double(m) * d;
    const T gs = T(2.0 * scale / n);
    return ordered_chunk_sum(std::size_t(m), kRows, [&](std::size_t b, std::size_t e) {
             return mse_rows<T>(dhs, dtarget, hs, target, d, int(b), int(e), gs);
           }) / n;
  }
  const T gs = T(scale / m);
  return ordered_chunk_sum(std::size_t(m), kRows, [&](std::size_t b, std::size_t e) {
           return cosine_rows<T>(dhs, dtarget, hs, target, d, int(b), int(e), gs);
         }) / m;
}

template double feature_loss<float>(float*, float*, const float*, const float*, int, int,
                                    FeatureLoss, double);
template double feature_loss<double>(double*, double*, const double*, const double*, int, int,
                                     FeatureLoss, double);

}  // namespace kd::kern
