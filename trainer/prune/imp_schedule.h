// The step arithmetic of iterative magnitude pruning (IMP). Round 0 trains E steps from
// the start; each later round r = 1..R begins by pruning `rate` of the remaining weights
// (sparsity 1 − (1 − rate)^r), rewinds, and trains E − k steps, where k is the rewind
// step (0 for rewinding to initialization). The learning-rate schedule of every round is
// the first round's, replayed from step k: the LR schedule is laid out over E steps and a
// step of round r ≥ 1 sits at position k + (its step − the round's first step).
#pragma once

#include <cstdint>
#include <string>

namespace kd::prune {

struct ImpSchedule {
  int rounds = 3;                 // R pruning rounds after the first training round
  std::int64_t round_steps = 100;  // E
  double rate = 0.2;
  std::int64_t rewind_to = 0;      // k

  std::int64_t total_steps() const { return round_steps + rounds * (round_steps - rewind_to); }
  // The round a step (0-based, the number of updates done) belongs to: 0..R.
  int round_of(std::int64_t step) const;
  // The round whose training produced the weights after `steps_done` updates (what an
  // eval or checkpoint at that point shows).
  int round_done(std::int64_t steps_done) const { return round_of(steps_done > 0 ? steps_done - 1 : 0); }
  std::int64_t round_start(int round) const;  // its first step
  // Whether the masks are pruned and the weights rewound at the start of this step.
  bool is_boundary(std::int64_t step) const { return step > 0 && step < total_steps() && round_start(round_of(step)) == step; }
  double sparsity_of_round(int round) const;
  // The position in the LR schedule (laid out over E steps) of this step.
  std::int64_t lr_position(std::int64_t step) const;
};

// Throws InputError naming the prune.* key: rate outside (0, 1), a rewind step at or beyond
// the end of the first round, train.steps not E + R (E − k).
void check_imp(const ImpSchedule& s, std::int64_t train_steps, const std::string& where);

}  // namespace kd::prune
