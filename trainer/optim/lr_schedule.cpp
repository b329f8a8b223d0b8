#include "trainer/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace kd {

double lr_at(const OptimSection& o, std::int64_t total, std::int64_t step) {
  if (step < o.warmup_steps) return o.lr * double(step + 1) / double(o.warmup_steps);
  const std::int64_t span = std::max<std::int64_t>(1, total - o.warmup_steps - 1);
  const double progress = std::clamp(double(step - o.warmup_steps) / double(span), 0.0, 1.0);
  const double floor = o.min_lr_ratio;
  switch (o.schedule) {
    case Schedule::constant:
      return o.lr;
    case Schedule::linear:
      return o.lr * (1.0 - (1.0 - floor) * progress);
    case Schedule::cosine:
      return o.lr * (floor + (1.0 - floor) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
  }
  return o.lr;
}

}  // namespace kd
