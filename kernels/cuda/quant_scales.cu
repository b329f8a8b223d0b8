// Dynamic quantization scales (an observer's min/max per scale slot) on the device: one
// block per slot, a min/max reduction (exact in any order; NaNs skipped as the CPU does),
// then kernels/common's affine_params or the FP8 absmax rule.
#include "kernels/common/quant_math.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace kd::kern::cuda {

namespace {

constexpr unsigned kThreads = 256;

struct Min {
  __device__ float operator()(float a, float b) const { return b < a ? b : a; }
};

__global__ void dynamic_scales_k(float* scale, std::int32_t* zero, const float* x, int rows, int cols, int per_row,
                                 int span, common::IntGrid g, bool symmetric, bool fp8, float fp8_max) {
  __shared__ float sh[kThreads];
  const std::size_t j = blockIdx.x;
  // the slot's elements: all of them (per tensor), or `span` columns of one row
  const std::size_t r0 = per_row == 0 ? 0 : j / per_row, c0 = per_row == 0 ? 0 : (j % per_row) * span;
  const std::size_t nrows = per_row == 0 ? std::size_t(rows) : 1, ncols = per_row == 0 ? std::size_t(cols) : span;
  float lo = 0.0f, hi = 0.0f;  // the range always holds 0
  for (std::size_t i = threadIdx.x; i < nrows * ncols; i += blockDim.x) {
    const float v = x[(r0 + i / ncols) * cols + c0 + i % ncols];
    lo = v < lo ? v : lo;  // a NaN compares false: skipped
    hi = v > hi ? v : hi;
  }
  lo = block_reduce(lo, sh, Min{});
  hi = block_reduce(hi, sh, Max{});
  if (threadIdx.x != 0) return;
  if (fp8) {
    const float amax = fmaxf(-lo, hi);
    scale[j] = amax > 0.0f ? amax / fp8_max : 1.0f;
    if (zero) zero[j] = 0;
  } else {
    const common::Affine a = common::affine_params(lo, hi, g, symmetric);
    scale[j] = a.scale;
    if (zero) zero[j] = std::int32_t(a.zero_point);
  }
}

}  // namespace

void quant_dynamic_scales(float* scale, std::int32_t* zero, const float* x, const QuantFormat& f, int rows, int cols) {
  const std::size_t slots = f.scale_count(rows, cols);
  if (slots == 0) return;
  const bool tensor = f.granularity == QuantGranularity::tensor;
  const int span = f.span(cols), per_row = tensor ? 0 : cols / span;
  const common::Fp8Format fmt = f.kind == QuantKind::fp8_e4m3 ? common::Fp8Format::e4m3 : common::Fp8Format::e5m2;
  dynamic_scales_k<<<unsigned(slots), kThreads>>>(scale, zero, x, rows, cols, per_row, span,
                                                  common::int_grid(f.bits, f.symmetric), f.symmetric, f.is_fp8(),
                                                  common::fp8_decode(common::fp8_spec(fmt).max_code, fmt));
  check_launch("quant_dynamic_scales");
}

}  // namespace kd::kern::cuda
