#include "trainer/oneshot/rtn.h"

#include <algorithm>

namespace kd::oneshot {

void round_to_nearest(double* v, int rows, int cols, const kern::QuantFormat& f, std::vector<float>* scale,
                      std::vector<std::int32_t>* zero) {
  auto keep = [&](const Slot& s) {
    if (scale) scale->push_back(s.scale);
    if (zero) zero->push_back(std::int32_t(s.zero));
  };
  if (scale) scale->clear();
  if (zero) zero->clear();
  if (f.granularity == kern::QuantGranularity::tensor) {
    const Slot s = slot_of_range(v, rows * cols, f);
    for (std::size_t i = 0; i < std::size_t(rows) * cols; ++i) v[i] = quantize(v[i], s, f);
    keep(s);
    return;
  }
  const int span = f.span(cols);
  for (int r = 0; r < rows; ++r) {
    for (int c0 = 0; c0 < cols; c0 += span) {
      double* g = v + std::size_t(r) * cols + c0;
      const Slot s = slot_of_range(g, span, f);
      for (int j = 0; j < span; ++j) g[j] = quantize(g[j], s, f);
      keep(s);
    }
  }
}

}  // namespace kd::oneshot
