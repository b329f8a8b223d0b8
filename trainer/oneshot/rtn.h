// Round-to-nearest of the one-shot methods: a scale slot's FakeQuant parameters from the
// min/max of its float32 values (kdtrain's minmax calibrator, kernels/common/quant_math.h),
// and quantize-dequantize of one value with them. Integer formats only.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/common/quant_math.h"
#include "kernels/kernels.h"

namespace kd::oneshot {

struct Slot {
  float scale = 1, inv = 1;
  std::int64_t zero = 0;
};

inline Slot slot_of(float lo, float hi, const kern::QuantFormat& f) {
  const common::Affine a = common::affine_params(lo, hi, common::int_grid(f.bits, f.symmetric), f.symmetric);
  return {a.scale, 1.0f / a.scale, a.zero_point};
}

// The slot of the float32 values of v[0..n) (n > 0)
inline Slot slot_of_range(const double* v, int n, const kern::QuantFormat& f) {
  float lo = float(v[0]), hi = lo;
  for (int i = 1; i < n; ++i) {
    const float x = float(v[i]);
    lo = x < lo ? x : lo;
    hi = x > hi ? x : hi;
  }
  return slot_of(lo, hi, f);
}

// FakeQuant of float32(w): the value the quantized model holds
inline double quantize(double w, const Slot& s, const kern::QuantFormat& f) {
  return common::fake_quant(float(w), s.scale, s.inv, s.zero, common::int_grid(f.bits, f.symmetric));
}

// In place: every scale slot of v (rows, cols) quantized with its own min/max slot; the
// slots' scales and zero points (row-major slot order) into scale/zero when given.
void round_to_nearest(double* v, int rows, int cols, const kern::QuantFormat& f, std::vector<float>* scale = nullptr,
                      std::vector<std::int32_t>* zero = nullptr);

}  // namespace kd::oneshot
