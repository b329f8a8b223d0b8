// The CUDA element and row ops, each the CPU backend's formula (kernels/cpu/*.cpp) with the
// shared scalar math of kernels/common. Reductions run in a fixed order (a block's tree, or
// one thread per output column over rows in order): deterministic for a shape.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/common/quant_math.h"
#include "kernels/common/scalar_math.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace kd::kern::cuda {

namespace {

constexpr unsigned kThreads = 256;

__global__ void embedding_forward_k(float* x, const float* emb, const std::int32_t* tokens, int m, int d) {
  const std::size_t n = std::size_t(m) * d;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t r = i / d, c = i % d;
    x[i] = emb[std::size_t(tokens[r]) * d + c];
  }
}

// One thread per column: rows in order, so repeated tokens add up in the CPU's order.
__global__ void embedding_backward_k(float* demb, const float* dx, const std::int32_t* tokens, int m, int d) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= d) return;
  for (int r = 0; r < m; ++r) demb[std::size_t(tokens[r]) * d + c] += dx[std::size_t(r) * d + c];
}

__global__ void rmsnorm_forward_k(float* y, float* rstd, const float* x, const float* w, int d, float eps) {
  __shared__ float shared[kThreads];
  const std::size_t row = blockIdx.x;
  const float* xr = x + row * d;
  float ss = 0;
  for (int c = threadIdx.x; c < d; c += blockDim.x) ss += xr[c] * xr[c];
  ss = block_sum(ss, shared);
  const float s = 1.0f / sqrtf(ss / float(d) + eps);
  if (threadIdx.x == 0) rstd[row] = s;
  for (int c = threadIdx.x; c < d; c += blockDim.x) y[row * d + c] = xr[c] * s * w[c];
}

__global__ void rmsnorm_backward_dx_k(float* dx, const float* dy, const float* dresid, const float* x,
                                      const float* rstd, const float* w, int d) {
  __shared__ float shared[kThreads];
  const std::size_t row = blockIdx.x;
  const float* xr = x + row * d;
  const float* gr = dy + row * d;
  const float s = rstd[row];
  float dot = 0;
  for (int c = threadIdx.x; c < d; c += blockDim.x) dot += gr[c] * w[c] * xr[c];
  dot = block_sum(dot, shared);
  const float k = dot * s * s / float(d);
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    dx[row * d + c] = (dresid ? dresid[row * d + c] : 0.0f) + s * (gr[c] * w[c] - xr[c] * k);
  }
}

__global__ void rmsnorm_backward_dw_k(float* dw, const float* dy, const float* x, const float* rstd, int m, int d) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= d) return;
  float acc = dw[c];
  for (int r = 0; r < m; ++r) acc += dy[std::size_t(r) * d + c] * x[std::size_t(r) * d + c] * rstd[r];
  dw[c] = acc;
}

__global__ void swiglu_forward_k(float* act, const float* gu, int m, int f) {
  const std::size_t n = std::size_t(m) * f;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t r = i / f, c = i % f;
    const float g = gu[r * 2 * f + c], u = gu[r * 2 * f + f + c];
    act[i] = common::silu(g) * u;
  }
}

__global__ void swiglu_backward_k(float* dgu, const float* dact, const float* gu, int m, int f) {
  const std::size_t n = std::size_t(m) * f;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t r = i / f, c = i % f;
    const float g = gu[r * 2 * f + c], u = gu[r * 2 * f + f + c], da = dact[i];
    const float sg = common::sigmoid(g);
    dgu[r * 2 * f + f + c] = da * g * sg;
    dgu[r * 2 * f + c] = da * u * sg * (1.0f + g * (1.0f - sg));
  }
}

struct AdamWConsts {
  float decay, b1, b2, omb1, omb2, step_size, bc2_sqrt, eps, gs;
};

__global__ void adamw_k(float* param, const float* grad, float* m, float* v, std::size_t n, AdamWConsts k) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    const float g = grad[i] * k.gs;
    float p = param[i] * k.decay;
    const float mi = m[i] * k.b1 + k.omb1 * g;
    const float vi = v[i] * k.b2 + k.omb2 * g * g;
    m[i] = mi;
    v[i] = vi;
    p -= k.step_size * mi / (sqrtf(vi) / k.bc2_sqrt + k.eps);
    param[i] = p;
  }
}

// The scale slot of element (r, c), as kernels/cpu/fake_quant.cpp lays them out.
struct SlotMap {
  int per_row;  // 0: one scale for the tensor
  int span;
  __device__ std::size_t of(std::size_t r, std::size_t c) const { return per_row == 0 ? 0 : r * per_row + c / span; }
};
SlotMap slot_map(const QuantFormat& f, int cols) {
  if (f.granularity == QuantGranularity::tensor) return {0, cols};
  const int span = f.span(cols);
  return {cols / span, span};
}

struct FqArgs {
  QuantKind kind;
  common::IntGrid grid;
  common::Fp8Format fp8;
  float fp8_clip;  // common::fp8_clip_bound
  SlotMap slots;
  int cols;
};

__device__ float fq_element(float x, float s, std::int32_t z, const FqArgs& a, bool* in) {
  const float inv = 1.0f / s;
  if (a.kind == QuantKind::integer) return common::fake_quant(x, s, inv, z, a.grid, in);
  const float u = x * inv;
  if (in) *in = fabsf(u) <= a.fp8_clip;
  return common::fp8_round(u, a.fp8) * s;
}

__global__ void fake_quant_forward_k(float* y, const float* x, const float* scale, const std::int32_t* zero,
                                     std::size_t n, FqArgs a) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t j = a.slots.of(i / a.cols, i % a.cols);
    y[i] = fq_element(x[i], scale[j], zero ? zero[j] : 0, a, nullptr);
  }
}

__global__ void fake_quant_ste_k(float* dx, const float* dy, const float* x, const float* scale,
                                 const std::int32_t* zero, std::size_t n, FqArgs a) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t j = a.slots.of(i / a.cols, i % a.cols);
    bool in = true;
    fq_element(x[i], scale[j], zero ? zero[j] : 0, a, &in);
    dx[i] = common::ste_grad(dy[i], in);
  }
}

// LSQ: one thread per scale slot (or per row for a tensor scale), its elements in order and
// summed in double: the CPU backend's order, so dscale agrees bit for bit.
__global__ void fake_quant_lsq_k(float* dx, float* dscale_or_rows, const float* dy, const float* x, const float* scale,
                                 const std::int32_t* zero, int rows, FqArgs a, float grad_factor, bool per_tensor) {
  const std::size_t units = per_tensor ? std::size_t(rows) : std::size_t(rows) * a.slots.per_row;
  const std::size_t u = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (u >= units) return;
  const std::size_t j = per_tensor ? 0 : u;
  const std::size_t r = per_tensor ? u : u / a.slots.per_row;
  const std::size_t c0 = per_tensor ? 0 : (u % a.slots.per_row) * a.slots.span;
  const std::size_t c1 = per_tensor ? std::size_t(a.cols) : c0 + a.slots.span;
  const float s = scale[j], inv = 1.0f / s;
  const std::int32_t z = zero ? zero[j] : 0;
  double acc = 0.0;
  for (std::size_t c = c0; c < c1; ++c) {
    const std::size_t i = r * a.cols + c;
    const auto l = common::lsq_grad(x[i], dy[i], s, inv, z, a.grid, grad_factor);
    dx[i] = l.dx;
    acc += l.dscale;
  }
  if (per_tensor) {
    reinterpret_cast<double*>(dscale_or_rows)[u] = acc;  // row partials, summed in row order below
  } else {
    dscale_or_rows[j] += float(acc);
  }
}

__global__ void sum_squares_partial_k(double* partial, const float* x, std::size_t n) {
  __shared__ double shared[kThreads];
  double acc = 0;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    acc += double(x[i]) * double(x[i]);
  }
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

FqArgs fq_args(const QuantFormat& f, int cols) {
  const common::Fp8Format fmt = f.kind == QuantKind::fp8_e4m3 ? common::Fp8Format::e4m3 : common::Fp8Format::e5m2;
  return {f.kind, common::int_grid(f.bits, f.symmetric), fmt,
          common::fp8_clip_bound(fmt), slot_map(f, cols), cols};
}

}  // namespace

void embedding_forward(float* x, const float* emb, const std::int32_t* tokens, int m, int d) {
  const std::size_t n = std::size_t(m) * d;
  if (n == 0) return;
  embedding_forward_k<<<blocks_for(n, kThreads), kThreads>>>(x, emb, tokens, m, d);
  check_launch("embedding_forward");
}

void embedding_backward(float* demb, const float* dx, const std::int32_t* tokens, int m, int d) {
  if (d == 0) return;
  embedding_backward_k<<<blocks_for(d, 128), 128>>>(demb, dx, tokens, m, d);
  check_launch("embedding_backward");
}

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int m, int d, float eps) {
  if (m == 0) return;
  rmsnorm_forward_k<<<m, kThreads>>>(y, rstd, x, w, d, eps);
  check_launch("rmsnorm_forward");
}

void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* dresid, const float* x, const float* rstd,
                      const float* w, int m, int d) {
  if (m == 0) return;
  rmsnorm_backward_dx_k<<<m, kThreads>>>(dx, dy, dresid, x, rstd, w, d);
  check_launch("rmsnorm_backward (dx)");
  rmsnorm_backward_dw_k<<<blocks_for(d, 128), 128>>>(dw, dy, x, rstd, m, d);
  check_launch("rmsnorm_backward (dw)");
}

void swiglu_forward(float* act, const float* gu, int m, int f) {
  const std::size_t n = std::size_t(m) * f;
  if (n == 0) return;
  swiglu_forward_k<<<blocks_for(n, kThreads), kThreads>>>(act, gu, m, f);
  check_launch("swiglu_forward");
}

void swiglu_backward(float* dgu, const float* dact, const float* gu, int m, int f) {
  const std::size_t n = std::size_t(m) * f;
  if (n == 0) return;
  swiglu_backward_k<<<blocks_for(n, kThreads), kThreads>>>(dgu, dact, gu, m, f);
  check_launch("swiglu_backward");
}

void adamw_update(float* param, const float* grad, float* m, float* v, std::size_t n, const AdamWStep& s) {
  if (n == 0) return;
  // the constants rounded to float exactly as the CPU backend rounds them
  const AdamWConsts k{float(1.0 - s.lr * s.weight_decay), float(s.beta1), float(s.beta2), float(1.0 - s.beta1),
                      float(1.0 - s.beta2), float(s.lr / s.bias_correction1), float(std::sqrt(s.bias_correction2)),
                      float(s.eps), float(s.grad_scale)};
  adamw_k<<<blocks_for(n, kThreads), kThreads>>>(param, grad, m, v, n, k);
  check_launch("adamw_update");
}

void fake_quant_forward(float* y, const float* x, const float* scale, const std::int32_t* zero, const QuantFormat& f,
                        int rows, int cols) {
  const std::size_t n = std::size_t(rows) * cols;
  if (n == 0) return;
  fake_quant_forward_k<<<blocks_for(n, kThreads), kThreads>>>(y, x, scale, zero, n, fq_args(f, cols));
  check_launch("fake_quant_forward");
}

void fake_quant_backward_ste(float* dx, const float* dy, const float* x, const float* scale, const std::int32_t* zero,
                             const QuantFormat& f, int rows, int cols) {
  const std::size_t n = std::size_t(rows) * cols;
  if (n == 0) return;
  fake_quant_ste_k<<<blocks_for(n, kThreads), kThreads>>>(dx, dy, x, scale, zero, n, fq_args(f, cols));
  check_launch("fake_quant_backward_ste");
}

void fake_quant_backward_lsq(float* dx, float* dscale, const float* dy, const float* x, const float* scale,
                             const std::int32_t* zero, const QuantFormat& f, int rows, int cols, float grad_factor) {
  const FqArgs a = fq_args(f, cols);
  const bool per_tensor = a.slots.per_row == 0;
  const std::size_t units = per_tensor ? std::size_t(rows) : std::size_t(rows) * a.slots.per_row;
  if (units == 0) return;
  double* row_sums = per_tensor ? scratch_of<double>(Scratch::reductions, std::size_t(rows)) : nullptr;
  fake_quant_lsq_k<<<blocks_for(units, 128), 128>>>(dx, per_tensor ? reinterpret_cast<float*>(row_sums) : dscale, dy,
                                                    x, scale, zero, rows, a, grad_factor, per_tensor);
  check_launch("fake_quant_backward_lsq");
  if (!per_tensor) return;
  const double total = sum_in_order(row_sums, std::size_t(rows));
  float ds = 0;
  check(cudaMemcpy(&ds, dscale, sizeof(float), cudaMemcpyDeviceToHost), "download dscale");
  ds += float(total);
  check(cudaMemcpy(dscale, &ds, sizeof(float), cudaMemcpyHostToDevice), "upload dscale");
}

double sum_squares(const float* x, std::size_t n) {
  if (n == 0) return 0.0;
  const unsigned blocks = std::min<unsigned>(blocks_for(n, kThreads), 1024);
  double* partial = scratch_of<double>(Scratch::reductions, blocks);
  sum_squares_partial_k<<<blocks, kThreads>>>(partial, x, n);
  check_launch("sum_squares");
  return sum_in_order(partial, blocks);  // block order: fixed
}

}  // namespace kd::kern::cuda
