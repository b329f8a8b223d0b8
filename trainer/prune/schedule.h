// Sparsity schedules. Gradual pruning after Zhu & Gupta 2017 ("To prune, or not to prune"):
// s_t = s_f + (s_i − s_f) · (1 − (t − t0) / (t1 − t0))³, evaluated at the last pruning step
// t0 + k·Δ ≤ t, before t0 s_i (no pruning yet when s_i = 0), from t1 on s_f.
#pragma once

#include <cstdint>
#include <string>

namespace kd::prune {

struct GradualSchedule {
  double initial = 0.0;      // s_i
  double final = 0.5;        // s_f
  std::int64_t start = 0;    // t0
  std::int64_t end = 1000;   // t1
  std::int64_t every = 100;  // Δ
};

// Throws InputError naming `where` on sparsities outside [0, 1), initial > final,
// end <= start, every < 1.
void check_schedule(const GradualSchedule& g, const std::string& where);
double gradual_sparsity(const GradualSchedule& g, std::int64_t step);
// Whether the masks are recomputed at this step: t0, t0 + Δ, …, up to and including t1.
bool is_pruning_step(const GradualSchedule& g, std::int64_t step);

}  // namespace kd::prune
