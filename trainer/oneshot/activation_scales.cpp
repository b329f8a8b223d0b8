#include "trainer/oneshot/activation_scales.h"

#include <algorithm>
#include <cmath>

#include "trainer/oneshot/rtn.h"

namespace kd::oneshot {

AwqScales awq_search(const std::vector<GroupWeight>& group, int cols, const InputStats& x, int grid) {
  const std::vector<double> mean = x.mean_abs();
  AwqScales out;
  out.losses.assign(grid, 0.0);
  std::vector<double> s(cols), d;
  double best = 0;
  for (int i = 0; i < grid; ++i) {
    const double alpha = double(i) / grid;
    double hi = 0, lo = 0;
    for (int j = 0; j < cols; ++j) {
      s[j] = std::max(std::pow(mean[j], alpha), 1e-4);
      hi = j == 0 ? s[j] : std::max(hi, s[j]);
      lo = j == 0 ? s[j] : std::min(lo, s[j]);
    }
    const double norm = std::sqrt(hi * lo);
    for (double& v : s) v /= norm;
    double loss = 0;
    for (const GroupWeight& g : group) {  // W' = RTN(W·diag(s))·diag(s)⁻¹, against W
      d.resize(std::size_t(g.rows) * cols);
      for (int r = 0; r < g.rows; ++r) {
        for (int j = 0; j < cols; ++j) d[std::size_t(r) * cols + j] = double(g.w[std::size_t(r) * cols + j]) * s[j];
      }
      round_to_nearest(d.data(), g.rows, cols, g.format);
      for (int r = 0; r < g.rows; ++r) {
        for (int j = 0; j < cols; ++j) {
          double& v = d[std::size_t(r) * cols + j];
          v = v / s[j] - double(g.w[std::size_t(r) * cols + j]);
        }
      }
      loss += x.output_error(d.data(), g.rows);
    }
    out.losses[i] = loss;
    if (i == 0 || loss < best) {
      best = loss;
      out.alpha = alpha;
      out.scales = s;
    }
  }
  return out;
}

std::vector<double> awq_clip(double* ws, int rows, int cols, const std::vector<double>& s, const InputStats& x,
                             const kern::QuantFormat& f, int grid, double max_shrink) {
  if (f.granularity == kern::QuantGranularity::tensor) return {};
  const int span = f.span(cols), slots = cols / span;
  const int steps = int(std::ceil(grid * max_shrink - 1e-9));
  std::vector<double> ratio(std::size_t(rows) * slots);
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    std::vector<double> clamped(span), d(span);
    for (int g = 0; g < slots; ++g) {
      double* v = ws + std::size_t(r) * cols + std::size_t(g) * span;
      double m0 = 0;
      for (int j = 0; j < span; ++j) m0 = std::max(m0, std::fabs(v[j]));
      double best = 0, best_err = 0;
      for (int i = 0; i < steps; ++i) {
        const double mv = m0 * (1.0 - double(i) / grid);
        for (int j = 0; j < span; ++j) clamped[j] = std::clamp(v[j], -mv, mv);
        const Slot sl = slot_of_range(clamped.data(), span, f);
        for (int j = 0; j < span; ++j) d[j] = (quantize(clamped[j], sl, f) - v[j]) / s[std::size_t(g) * span + j];
        const double err = x.span_error(d.data(), g * span, span);
        if (i == 0 || err < best_err) {
          best_err = err;
          best = 1.0 - double(i) / grid;
        }
      }
      ratio[std::size_t(r) * slots + g] = best;
      const double mv = m0 * best;
      for (int j = 0; j < span; ++j) v[j] = std::clamp(v[j], -mv, mv);
    }
  }
  return ratio;
}

std::vector<double> smoothquant_scales(const std::vector<GroupWeight>& group, int cols, const InputStats& x,
                                       double alpha) {
  std::vector<double> wmax(cols, 0.0), s(cols, 1.0);
  for (const GroupWeight& g : group) {
    for (int r = 0; r < g.rows; ++r) {
      for (int j = 0; j < cols; ++j) wmax[j] = std::max(wmax[j], std::fabs(double(g.w[std::size_t(r) * cols + j])));
    }
  }
  const std::vector<double>& xmax = x.max_abs();
  for (int j = 0; j < cols; ++j) {
    if (xmax[j] > 0 && wmax[j] > 0) s[j] = std::pow(xmax[j], alpha) / std::pow(wmax[j], 1.0 - alpha);
  }
  return s;
}

}  // namespace kd::oneshot
