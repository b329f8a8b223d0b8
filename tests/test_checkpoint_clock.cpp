// The wall-time period of train.checkpoint_minutes (trainer/run/checkpoint_clock.h): when a
// checkpoint is due, and the guess one step ahead that lets the update before it take the
// CRC-32s. A run of steady 10 s steps with a 1-minute period is stepped through by hand.
#include <gtest/gtest.h>

#include <vector>

#include "trainer/run/checkpoint_clock.h"

namespace kd {
namespace {

TEST(CheckpointClock, NoPeriodNeverFlags) {
  const CheckpointClock clock(0, 100.0);
  EXPECT_EQ(clock.flags(1e9, 5.0), (std::array<double, 2>{0.0, 0.0}));
}

TEST(CheckpointClock, DueWhenThePeriodHasPassedAndGuessedOneStepAhead) {
  CheckpointClock clock(1.0, 1000.0);  // 60 s
  EXPECT_EQ(clock.flags(1049.0, 10.0), (std::array<double, 2>{0.0, 0.0}));  // ends at 1059 at the latest
  EXPECT_EQ(clock.flags(1050.0, 10.0), (std::array<double, 2>{0.0, 1.0}));  // the next step ends at 1060
  EXPECT_EQ(clock.flags(1060.0, 10.0), (std::array<double, 2>{1.0, 1.0}));
  clock.saved(1060.5);  // the period starts again from the checkpoint
  EXPECT_EQ(clock.flags(1061.0, 10.0), (std::array<double, 2>{0.0, 0.0}));
  EXPECT_EQ(clock.flags(1111.0, 10.0), (std::array<double, 2>{0.0, 1.0}));
  EXPECT_EQ(clock.flags(1120.5, 10.0), (std::array<double, 2>{1.0, 1.0}));
}

// As the run loop uses it: with steady steps every checkpoint the period causes was guessed
// the step before, so every one is written from its update's sums.
TEST(CheckpointClock, SteadyStepsGuessEveryCheckpoint) {
  CheckpointClock clock(1.0, 0.0);
  const double step_s = 7.0;
  bool guessed = false;
  int due = 0, due_guessed = 0, guessed_wrongly = 0;
  for (int step = 1; step <= 100; ++step) {
    const double now = step * step_s;
    const auto f = clock.flags(now, step_s);
    if (f[0] > 0) {
      ++due;
      due_guessed += guessed ? 1 : 0;
      clock.saved(now);
    } else if (guessed) {
      ++guessed_wrongly;
    }
    guessed = f[0] == 0 && f[1] > 0;
  }
  EXPECT_EQ(due, 11);  // every 9th step: 63 s
  EXPECT_EQ(due_guessed, due);
  EXPECT_EQ(guessed_wrongly, 0);
}

}  // namespace
}  // namespace kd
