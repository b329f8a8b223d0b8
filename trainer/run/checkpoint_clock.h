// The wall-time period of train.checkpoint_minutes: a checkpoint after the first step that
// ends at least the period after the last one. It also judges, one step ahead, whether the
// next step will end past the period (from the last step's time), so that the run loop can
// have that step's update take the CRC-32s the checkpoint needs (Trainer::sum_next_update)
// instead of the writer reading every byte for them. A wrong guess costs only time: a guess
// too early sums an update no checkpoint follows (a few percent of one update), one too late
// leaves the writer to read the state, as a checkpoint on a preemption signal does.
#pragma once

#include <array>

namespace kd {

class CheckpointClock {
 public:
  // minutes <= 0: no period (the flags stay 0)
  CheckpointClock(double minutes, double now_s) : period_s_(minutes * 60), last_s_(now_s) {}

  // This rank's flags after a step that took `step_s`, ending at `now_s`: {the period has
  // passed, it will have by the end of a next step as long}. Ranks max-reduce them so that all
  // act after the same step.
  std::array<double, 2> flags(double now_s, double step_s) const {
    if (period_s_ <= 0) return {0.0, 0.0};
    return {now_s - last_s_ >= period_s_ ? 1.0 : 0.0, now_s + step_s - last_s_ >= period_s_ ? 1.0 : 0.0};
  }

  // a checkpoint was started (by the period or by the step count): the period starts again
  void saved(double now_s) { last_s_ = now_s; }

 private:
  double period_s_;
  double last_s_;
};

}  // namespace kd
