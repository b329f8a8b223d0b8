// The feature (hidden-state) loss, pruning masks and the step's reductions on the device.

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace kd::kern::cuda {

namespace {

constexpr unsigned kThreads = 256;

// One block per row (kernels/cpu/feature_loss.cpp's formulas); the row's value to row_out.
__global__ void feature_loss_k(float* dhs, float* dtarget, double* row_out, const float* hs, const float* target,
                               int d, bool cosine, float gs) {
  __shared__ float sh[kThreads];
  const std::size_t r = blockIdx.x;
  const float* a = hs + r * d;
  const float* b = target + r * d;
  float* da = dhs + r * d;
  float* db = dtarget + r * d;
  if (!cosine) {
    float row = 0;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
      const float diff = a[c] - b[c];
      row += diff * diff;
      da[c] += gs * diff;
      db[c] = -gs * diff;
    }
    row = block_sum(row, sh);
    if (threadIdx.x == 0) row_out[r] = double(row);
    return;
  }
  float ab = 0, aa = 0, bb = 0;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    ab += a[c] * b[c];
    aa += a[c] * a[c];
    bb += b[c] * b[c];
  }
  ab = block_sum(ab, sh);
  aa = block_sum(aa, sh);
  bb = block_sum(bb, sh);
  constexpr float kEps = 1e-8f;
  const float den = sqrtf(fmaxf(aa * bb, kEps * kEps));
  const float cs = ab / den;
  const float ia = aa > 0.0f ? 1.0f / aa : 0.0f, ib = bb > 0.0f ? 1.0f / bb : 0.0f;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    da[c] -= gs * (b[c] / den - cs * a[c] * ia);
    db[c] = -gs * (a[c] / den - cs * b[c] * ib);
  }
  if (threadIdx.x == 0) row_out[r] = 1.0 - double(cs);
}

__global__ void apply_mask_k(float* x, const std::uint8_t* mask, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    x[i] = mask[i] ? x[i] : 0.0f;
  }
}

// N:M: in every run of m consecutive elements keep the n of largest magnitude; among equal
// magnitudes the later element is kept (trainer/prune prunes the smallest (|w|, index) first).
__global__ void nm_mask_k(std::uint8_t* mask, const float* w, std::size_t groups, int n, int m) {
  for (std::size_t gi = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; gi < groups;
       gi += std::size_t(gridDim.x) * blockDim.x) {
    const float* g = w + gi * m;
    for (int i = 0; i < m; ++i) {
      const float ai = fabsf(g[i]);
      int rank = 0;  // elements that come before i in the order (larger, or equal and earlier)
      for (int k = 0; k < m; ++k) {
        const float ak = fabsf(g[k]);
        rank += ak > ai || (ak == ai && k > i);
      }
      mask[gi * m + i] = rank < n;
    }
  }
}

__global__ void scale_k(float* x, std::size_t n, float s) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    x[i] *= s;
  }
}
__global__ void add_k(float* y, const float* x, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    y[i] += x[i];
  }
}
// The smallest index of a non-finite element (atomicMin on an index is order-independent).
__global__ void first_non_finite_k(unsigned long long* first, const float* x, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    if (!isfinite(x[i])) atomicMin(first, static_cast<unsigned long long>(i));
  }
}

}  // namespace

double feature_loss(float* dhs, float* dtarget, const float* hs, const float* target, int m, int d, FeatureLoss kind,
                    double scale) {
  if (m == 0) return 0.0;
  const bool cosine = kind == FeatureLoss::cosine;
  const double n = cosine ? double(m) : double(m) * d;
  const float gs = float(cosine ? scale / m : 2.0 * scale / n);
  double* rows = scratch_of<double>(Scratch::loss_rows, std::size_t(m));
  feature_loss_k<<<m, kThreads>>>(dhs, dtarget, rows, hs, target, d, cosine, gs);
  check_launch("feature_loss");
  return sum_in_order(rows, std::size_t(m)) / n;  // row order
}

void apply_mask(float* x, const std::uint8_t* mask, std::size_t n) {
  if (n == 0) return;
  apply_mask_k<<<blocks_for(n, kThreads), kThreads>>>(x, mask, n);
  check_launch("apply_mask");
}

void nm_mask(std::uint8_t* mask, const float* w, std::size_t numel, int n, int m) {
  if (m < 1 || numel % std::size_t(m) != 0) throw_invalid("nm_mask: the element count is not a multiple of m");
  const std::size_t groups = numel / std::size_t(m);
  if (groups == 0) return;
  nm_mask_k<<<blocks_for(groups, 128), 128>>>(mask, w, groups, n, m);
  check_launch("nm_mask");
}

void scale_inplace(float* x, std::size_t n, float s) {
  if (n == 0) return;
  scale_k<<<blocks_for(n, kThreads), kThreads>>>(x, n, s);
  check_launch("scale_inplace");
}

void add_inplace(float* y, const float* x, std::size_t n) {
  if (n == 0) return;
  add_k<<<blocks_for(n, kThreads), kThreads>>>(y, x, n);
  check_launch("add_inplace");
}

std::ptrdiff_t first_non_finite(const float* x, std::size_t n) {
  if (n == 0) return -1;
  const unsigned long long none = ~0ull;
  auto* first = scratch_of<unsigned long long>(Scratch::reductions, 1);
  check(cudaMemcpy(first, &none, sizeof none, cudaMemcpyHostToDevice), "first_non_finite (reset)");
  first_non_finite_k<<<blocks_for(n, kThreads), kThreads>>>(first, x, n);
  check_launch("first_non_finite");
  unsigned long long at = 0;
  check(cudaMemcpy(&at, first, sizeof at, cudaMemcpyDeviceToHost), "first_non_finite (result)");
  return at == none ? -1 : std::ptrdiff_t(at);
}

}  // namespace kd::kern::cuda
