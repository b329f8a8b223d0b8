// Rotate-half RoPE (Hugging Face Llama): pairs (j, j + hd/2) of each head rotate by
// pos·theta^(−2j/hd). Applied in place to the q and k columns of the fused qkv rows.
#include <cmath>

#include "kernels/kernels.h"

namespace kd::kern {

double rope_inv_freq(int j, int hd, double theta, const RopeScaling& sc) {
  const double inv = std::pow(theta, -2.0 * j / hd);
  if (sc.factor <= 0) return inv;
  // as transformers' _compute_llama3_parameters
  const double pi = 3.14159265358979323846;
  const double wavelen = 2.0 * pi / inv;
  const double low_wavelen = sc.original_context / sc.low_freq_factor;
  const double high_wavelen = sc.original_context / sc.high_freq_factor;
  if (wavelen < high_wavelen) return inv;
  if (wavelen > low_wavelen) return inv / sc.factor;
  const double smooth = (sc.original_context / wavelen - sc.low_freq_factor) / (sc.high_freq_factor - sc.low_freq_factor);
  return (1.0 - smooth) * inv / sc.factor + smooth * inv;
}

template <class T>
void rope_table(T* cos, T* sin, int seq, int hd, double theta, const RopeScaling& scaling) {
  const int half = hd / 2;
  for (int p = 0; p < seq; ++p) {
    for (int j = 0; j < half; ++j) {
      // angles in double: pos·freq loses digits in float at long sequences
      const double inv = rope_inv_freq(j, hd, theta, scaling);
      const double a = double(p) * inv;
      cos[std::size_t(p) * half + j] = T(std::cos(a));
      sin[std::size_t(p) * half + j] = T(std::sin(a));
    }
  }
}

namespace {
// sign = +1: forward rotation; −1: its transpose (the backward).
template <class T>
void rope_apply(T* x, const T* cos, const T* sin, int rows, int seq, int heads, int hd, int ld,
                int col0, T sign) {
  const int half = hd / 2;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    const int pos = r % seq;
    const T* c = cos + std::size_t(pos) * half;
    const T* s = sin + std::size_t(pos) * half;
    T* row = x + std::size_t(r) * ld + col0;
    for (int h = 0; h < heads; ++h) {
      T* a = row + std::size_t(h) * hd;
      T* b = a + half;
#pragma omp simd
      for (int j = 0; j < half; ++j) {
        const T x1 = a[j], x2 = b[j], sj = sign * s[j];
        a[j] = x1 * c[j] - x2 * sj;
        b[j] = x2 * c[j] + x1 * sj;
      }
    }
  }
}
}  // namespace

template <class T>
void rope_forward(T* x, const T* cos, const T* sin, int rows, int seq, int heads, int hd, int ld,
                  int col0) {
  rope_apply(x, cos, sin, rows, seq, heads, hd, ld, col0, T(1));
}

template <class T>
void rope_backward(T* dx, const T* cos, const T* sin, int rows, int seq, int heads, int hd,
                   int ld, int col0) {
  rope_apply(dx, cos, sin, rows, seq, heads, hd, ld, col0, T(-1));
}

template void rope_table<float>(float*, float*, int, int, double, const RopeScaling&);
template void rope_table<double>(double*, double*, int, int, double, const RopeScaling&);
template void rope_forward<float>(float*, const float*, const float*, int, int, int, int, int, int);
template void rope_forward<double>(double*, const double*, const double*, int, int, int, int, int,
                                   int);
template void rope_backward<float>(float*, const float*, const float*, int, int, int, int, int,
                                   int);
template void rope_backward<double>(double*, const double*, const double*, int, int, int, int, int,
                                    int);

}  // namespace kd::kern
