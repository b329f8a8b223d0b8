#include "trainer/prune/imp_schedule.h"

#include <algorithm>
#include <cmath>

#include "base/errors.h"

namespace kd::prune {

int ImpSchedule::round_of(std::int64_t step) const {
  if (step < round_steps) return 0;
  return int(std::min<std::int64_t>(rounds, 1 + (step - round_steps) / (round_steps - rewind_to)));
}

std::int64_t ImpSchedule::round_start(int round) const {
  return round == 0 ? 0 : round_steps + std::int64_t(round - 1) * (round_steps - rewind_to);
}

double ImpSchedule::sparsity_of_round(int round) const { return 1.0 - std::pow(1.0 - rate, round); }

std::int64_t ImpSchedule::lr_position(std::int64_t step) const {
  const int r = round_of(step);
  return r == 0 ? step : rewind_to + (step - round_start(r));
}

void check_imp(const ImpSchedule& s, std::int64_t train_steps, const std::string& where) {
  KD_CHECK_INPUT(s.rate > 0.0 && s.rate < 1.0, "{}.rate is {}: the fraction pruned per round must lie in (0, 1)", where,
                 s.rate);
  KD_CHECK_INPUT(s.rewind_to < s.round_steps,
                 "{}.rewind_step ({}) is not inside the first round (steps 0..{} of {}.round_steps = {}): IMP can "
                 "only rewind to a step the first round has reached", where, s.rewind_to, s.round_steps - 1, where,
                 s.round_steps);
  KD_CHECK_INPUT(train_steps == s.total_steps(),
                 "train.steps is {} but IMP with {}.round_steps E = {}, {}.rounds R = {} and rewind step k = {} trains "
                 "E + R (E - k) = {} steps: set train.steps to {}", train_steps, where, s.round_steps, where, s.rounds,
                 s.rewind_to, s.total_steps(), s.total_steps());
}

}  // namespace kd::prune
