#include "trainer/oneshot/rtn.h"

namespace kd::oneshot {

// The project's own minmax scales and FakeQuant (kernels/kernels.h) on the float32 values:
// the same slots PTQ's minmax calibrator gives the same weights.
void round_to_nearest(double* v, int rows, int cols, const kern::QuantFormat& f, std::vector<float>* scale,
                      std::vector<std::int32_t>* zero) {
  const std::size_t n = std::size_t(rows) * cols, slots = f.scale_count(rows, cols);
  std::vector<float> x(v, v + n), s(slots);
  std::vector<std::int32_t> z(slots);
  kern::quant_dynamic_scales(s.data(), z.data(), x.data(), f, rows, cols);
  kern::fake_quant_forward(x.data(), x.data(), s.data(), z.data(), f, rows, cols);
  for (std::size_t i = 0; i < n; ++i) v[i] = x[i];
  if (scale) *scale = std::move(s);
  if (zero) *zero = std::move(z);
}

}  // namespace kd::oneshot
