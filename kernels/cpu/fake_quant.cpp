// Fake quantization of whole tensors: the per-element math of kernels/common/quant_math.h
// mapped over scale slots (per tensor, per row, per group along a row).
#include <cmath>
#include <vector>

#include "kernels/common/quant_math.h"
#include "kernels/kernels.h"

namespace kd::kern {

std::size_t QuantFormat::scale_count(int rows, int cols) const {
  switch (granularity) {
    case QuantGranularity::tensor: return 1;
    case QuantGranularity::channel:
    case QuantGranularity::token: return std::size_t(rows);
    case QuantGranularity::group: return std::size_t(rows) * std::size_t(cols / group);
  }
  return 1;
}

namespace {

common::Fp8Format fp8_of(const QuantFormat& f) {
  return f.kind == QuantKind::fp8_e4m3 ? common::Fp8Format::e4m3 : common::Fp8Format::e5m2;
}

float fp8_max(const QuantFormat& f) {
  const auto fmt = fp8_of(f);
  return common::fp8_decode(common::fp8_spec(fmt).max_code, fmt);
}

// The slot of element (r, c): rows of `span` elements share a scale.
struct Slots {
  int per_row;  // slots in one row (0 for a per-tensor scale)
  int span;
  std::size_t of(int r, int c) const { return per_row == 0 ? 0 : std::size_t(r) * per_row + c / span; }
};
Slots slots(const QuantFormat& f, int cols) {
  if (f.granularity == QuantGranularity::tensor) return {0, cols};
  const int span = f.span(cols);
  return {cols / span, span};
}

// One element forward; `in` tells the STE whether it fell inside the clipping range.
inline float fq(float x, float s, std::int32_t z, const QuantFormat& f, common::IntGrid g, bool* in, float inv) {
  if (f.kind == QuantKind::integer) return common::fake_quant(x, s, inv, z, g, in);
  const float u = x * inv;
  if (in) *in = std::fabs(u) <= common::fp8_clip_bound(fp8_of(f));  // saturation clips like an integer grid
  return common::fp8_round(u, fp8_of(f)) * s;
}

// Rows split over threads; within a row, one scale slot at a time, so the slot's scale,
// 1/scale and zero point are loaded once and the element loop vectorises.
template <class Body>
void for_each_slot(const QuantFormat& f, int rows, int cols, Body body) {
  const Slots sl = slots(f, cols);
  const int per_row = sl.per_row == 0 ? 1 : sl.per_row;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    for (int k = 0; k < per_row; ++k) {
      const std::size_t j = sl.per_row == 0 ? 0 : std::size_t(r) * per_row + k;
      const std::size_t begin = std::size_t(r) * cols + std::size_t(k) * sl.span;
      body(j, begin, begin + std::size_t(sl.per_row == 0 ? cols : sl.span));
    }
  }
}

}  // namespace

void fake_quant_forward(float* y, const float* x, const float* scale, const std::int32_t* zero,
                        const QuantFormat& f, int rows, int cols) {
  const common::IntGrid g = common::int_grid(f.bits, f.symmetric);
  for_each_slot(f, rows, cols, [&](std::size_t j, std::size_t b, std::size_t e) {
    const float s = scale[j], inv = 1.0f / s;
    const std::int32_t z = zero ? zero[j] : 0;
    if (f.kind == QuantKind::integer) {
#pragma omp simd
      for (std::size_t i = b; i < e; ++i) y[i] = common::fake_quant(x[i], s, inv, z, g);
    } else {
      const auto fmt = fp8_of(f);
      for (std::size_t i = b; i < e; ++i) y[i] = common::fp8_round(x[i] * inv, fmt) * s;
    }
  });
}

void quant_dynamic_scales(float* scale, std::int32_t* zero, const float* x, const QuantFormat& f,
                          int rows, int cols) {
  const Slots sl = slots(f, cols);
  const common::IntGrid g = common::int_grid(f.bits, f.symmetric);
  const std::size_t n_slots = f.scale_count(rows, cols);
  const std::size_t per_slot_rows = sl.per_row == 0 ? std::size_t(rows) : 1;
  const int n_span = sl.per_row == 0 ? cols : sl.span;
#pragma omp parallel for schedule(static)
  for (std::size_t j = 0; j < n_slots; ++j) {
    float lo = 0.0f, hi = 0.0f;
    const std::size_t r0 = sl.per_row == 0 ? 0 : j / sl.per_row;
    const std::size_t c0 = sl.per_row == 0 ? 0 : (j % sl.per_row) * sl.span;
    for (std::size_t r = r0; r < r0 + per_slot_rows; ++r) {
      const float* row = x + r * cols + c0;
      // plain compares (vminps/vmaxps), not fmin/fmax calls; a NaN is skipped
#pragma omp simd reduction(min : lo) reduction(max : hi)
      for (int c = 0; c < n_span; ++c) {
        lo = row[c] < lo ? row[c] : lo;
        hi = row[c] > hi ? row[c] : hi;
      }
    }
    if (f.is_fp8()) {
      const float amax = std::fmax(-lo, hi);
      scale[j] = amax > 0.0f ? amax / fp8_max(f) : 1.0f;
      if (zero) zero[j] = 0;
    } else {
      const common::Affine a = common::affine_params(lo, hi, g, f.symmetric);
      scale[j] = a.scale;
      if (zero) zero[j] = std::int32_t(a.zero_point);
    }
  }
}

void quantize_codes_int8(std::int8_t* q, const float* x, const float* scale, const std::int32_t* zero,
                         bool per_row, int bits, bool symmetric, int shift, int rows, int cols) {
  const common::IntGrid g = common::int_grid(bits, symmetric);
  const float lo = float(g.qmin), hi = float(g.qmax);
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    const float s = scale[per_row ? r : 0], inv = 1.0f / s, z = float(zero ? zero[per_row ? r : 0] : 0);
    const float* xr = x + std::size_t(r) * cols;
    std::int8_t* qr = q + std::size_t(r) * cols;
    // clamping in float before the conversion equals common::quant_code's clamp after it
    // (the codes are small integers, exact in float), and lets the loop vectorise
#pragma omp simd
    for (int c = 0; c < cols; ++c) {
      float v = z + std::nearbyint(xr[c] * inv);
      v = v < lo ? lo : (v > hi ? hi : v);
      qr[c] = std::int8_t(int(v) - shift);
    }
  }
}

void fake_quant_backward_ste(float* dx, const float* dy, const float* x, const float* scale,
                             const std::int32_t* zero, const QuantFormat& f, int rows, int cols) {
  const common::IntGrid g = common::int_grid(f.bits, f.symmetric);
  for_each_slot(f, rows, cols, [&](std::size_t j, std::size_t b, std::size_t e) {
    const float s = scale[j], inv = 1.0f / s;
    const std::int32_t z = zero ? zero[j] : 0;
    for (std::size_t i = b; i < e; ++i) {
      bool in = false;
      fq(x[i], s, z, f, g, &in, inv);
      dx[i] = common::ste_grad(dy[i], in);
    }
  });
}

void fake_quant_backward_lsq(float* dx, float* dscale, const float* dy, const float* x,
                             const float* scale, const std::int32_t* zero, const QuantFormat& f,
                             int rows, int cols, float grad_factor) {
  const Slots sl = slots(f, cols);
  const common::IntGrid g = common::int_grid(f.bits, f.symmetric);
  if (sl.per_row == 0) {
    // one scale: per-row partial sums, then added in row order (deterministic)
    std::vector<double> part(std::size_t(rows), 0.0);
    const float s = scale[0], inv = 1.0f / s;
    const std::int32_t z = zero ? zero[0] : 0;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; ++r) {
      const std::size_t base = std::size_t(r) * cols;
      double acc = 0.0;
      for (int c = 0; c < cols; ++c) {
        const auto l = common::lsq_grad(x[base + c], dy[base + c], s, inv, z, g, grad_factor);
        dx[base + c] = l.dx;
        acc += l.dscale;
      }
      part[r] = acc;
    }
    double total = 0.0;
    for (double p : part) total += p;
    dscale[0] += float(total);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    const std::size_t base = std::size_t(r) * cols;
    for (int j0 = 0; j0 < sl.per_row; ++j0) {
      const std::size_t j = std::size_t(r) * sl.per_row + j0;
      const float s = scale[j], inv = 1.0f / s;
      const std::int32_t z = zero ? zero[j] : 0;
      double acc = 0.0;
      for (int c = j0 * sl.span; c < (j0 + 1) * sl.span; ++c) {
        const auto l = common::lsq_grad(x[base + c], dy[base + c], s, inv, z, g, grad_factor);
        dx[base + c] = l.dx;
        acc += l.dscale;
      }
      dscale[j] += float(acc);
    }
  }
}

}  // namespace kd::kern
