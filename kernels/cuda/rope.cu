// Rotate-half RoPE in place, one thread per rotated pair (kernels/cpu/rope.cpp's formula).
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace kd::kern::cuda {

namespace {

__global__ void rope_k(float* x, const float* cos, const float* sin, int rows, int seq, int heads, int hd, int ld,
                       int col0, float sign) {
  const int half = hd / 2;
  const std::size_t n = std::size_t(rows) * heads * half;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t j = i % half, h = (i / half) % heads, r = i / (std::size_t(half) * heads);
    const std::size_t pos = r % seq;
    float* a = x + r * ld + col0 + h * hd;
    const float c = cos[pos * half + j], sj = sign * sin[pos * half + j];
    const float x1 = a[j], x2 = a[j + half];
    a[j] = x1 * c - x2 * sj;
    a[j + half] = x2 * c + x1 * sj;
  }
}

void rope(float* x, const float* cos, const float* sin, int rows, int seq, int heads, int hd, int ld, int col0,
          float sign, const char* what) {
  const std::size_t n = std::size_t(rows) * heads * (hd / 2);
  if (n == 0) return;
  rope_k<<<blocks_for(n, 256), 256>>>(x, cos, sin, rows, seq, heads, hd, ld, col0, sign);
  check_launch(what);
}

}  // namespace

void rope_forward(float* x, const float* cos, const float* sin, int rows, int seq, int heads, int hd, int ld, int col0) {
  rope(x, cos, sin, rows, seq, heads, hd, ld, col0, 1.0f, "rope_forward");
}

void rope_backward(float* dx, const float* cos, const float* sin, int rows, int seq, int heads, int hd, int ld,
                   int col0) {
  rope(dx, cos, sin, rows, seq, heads, hd, ld, col0, -1.0f, "rope_backward");
}

}  // namespace kd::kern::cuda
