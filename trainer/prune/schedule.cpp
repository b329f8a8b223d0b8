#include "trainer/prune/schedule.h"

#include <algorithm>

#include "base/errors.h"

namespace kd::prune {

void check_schedule(const GradualSchedule& g, const std::string& where) {
  KD_CHECK_INPUT(g.initial >= 0 && g.initial < 1, "{}.initial is {}: it must lie in [0, 1)", where, g.initial);
  KD_CHECK_INPUT(g.final >= 0 && g.final < 1, "{}.final is {}: it must lie in [0, 1)", where, g.final);
  KD_CHECK_INPUT(g.initial <= g.final, "{}: initial sparsity {} exceeds final {}", where, g.initial, g.final);
  KD_CHECK_INPUT(g.end > g.start, "{}: end step {} must come after start step {}", where, g.end, g.start);
  KD_CHECK_INPUT(g.every >= 1, "{}.every is {}: at least 1", where, g.every);
}

double gradual_sparsity(const GradualSchedule& g, std::int64_t step) {
  if (step < g.start) return g.initial;
  if (step >= g.end) return g.final;
  const std::int64_t last = g.start + (step - g.start) / g.every * g.every;
  const double frac = 1.0 - double(last - g.start) / double(g.end - g.start);
  return g.final + (g.initial - g.final) * frac * frac * frac;
}

bool is_pruning_step(const GradualSchedule& g, std::int64_t step) {
  if (step < g.start || step > g.end) return false;
  return (step - g.start) % g.every == 0 || step == g.end;
}

}  // namespace kd::prune
